"""Fitting one model (docs/DESIGN.md, section 1): the outer loop on R_k with
early stopping on held-out clusters (``train``, eq. 18), the front ends that
read a table and lay it out (``fit``), and the fitted model that predicts
f(theta, x) without the cluster (``fitted``, eq. 2)."""
