"""Expert-practice evaluation: differential diagnosis, safety check and evidence citation, rated 1–5.

- ``rubric``: the three rubric prompts;
- ``items``: what is rated — training samples a strategy selected vs those it left out, and generations of
  fine-tuned models on a fixed set of evaluation questions;
- ``stats``: group means, bootstrap 95 % CIs of differences, inter-rater agreement (κ, α);
- ``review``: the blinded physician review pack (CSV + an offline HTML form) and the import of its ratings;
- ``python -m diq.practice``: the command line.
"""
