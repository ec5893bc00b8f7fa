"""Comparison estimators (docs/DESIGN.md, section 4 "Comparisons", eq. 10):
OLS with fixed effects and cluster-robust, CR2 or wild-bootstrap inference
(``fixed_effects``), a Nadaraya-Watson smoother with a leave-cluster-out
bandwidth (``kernel``), and balancing weights (``balancing``: entropy,
hierarchical and cluster balancing, and ``rfp.balance``)."""
