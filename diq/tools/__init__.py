"""The tools beside the run: ``bench`` (measured performance of the influence engine and its peers, with
``bench_*``), ``diagnose`` (what this machine can run) and ``fixtures`` (the hub-shaped offline fixtures)."""
