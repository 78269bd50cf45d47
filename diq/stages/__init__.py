"""The run's stages, one function per stage of the method, each with one door: its inputs, its cached output (a
``StageDir`` under ``cache_dir`` where it computes), and the record fields it fills.

pool → decontaminate (``pool``) → score (``score``) → select (``select``) → train (``train``) → DPO (``dpo``) →
evaluate (``evaluate``). ``diq.run.pipeline`` calls them in that order.
"""
