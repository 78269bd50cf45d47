"""The configuration layer: ``schema`` (the typed schemas Hydra checks when ``conf/`` is composed), ``checks``
(single values and blocks: each error names the key and the fix), ``compose`` (composing ``conf/`` for the tools)
and ``components`` (building what a ``_target_`` names). It imports nothing from the stages or the runner."""
