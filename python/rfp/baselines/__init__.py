"""Comparison estimators (docs/DESIGN.md, "Comparisons"): fixed effects,
balancing weights, a locally adaptive kernel smoother. One module each."""
