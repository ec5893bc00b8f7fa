"""Treatment effects by the method (docs/DESIGN.md, section 2): inputs read
(``reading``), cross-fitting folds of whole clusters (``folds``), nuisances
cross-fitted by the method or the nuisance ladder (``crossfit``,
``nuisance``), the propensity at the level of assignment (``propensity``),
the partially linear and AIPW scores (eq. 3-6, ``scores``), the estimators
and ``rfp.effect`` (``estimators``), their result (``result``), and effects
by group (``heterogeneity``)."""
