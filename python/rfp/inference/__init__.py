"""Inference on clustered data (docs/DESIGN.md, section 3): cluster-robust
CR1 variances and influence-function SEs (``cluster_robust``), t tests and
intervals on G - 1 df (``t_test``), CR2 with Satterthwaite df for few
clusters (``small_clusters``), the wild cluster bootstrap
(``wild_bootstrap``), and the SE of a weighted difference in means
(``weighted_mean``)."""
