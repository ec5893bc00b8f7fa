# Makes data/rfp_trial.rda, the package's example data: a stratified cluster
# trial drawn by the backend's rfp.simulate.cluster_trial (4 strata x 10
# clusters x 20 pupils, heterogeneous effect tau(x) = 1 + 0.5 x1), kept with
# the columns an analyst would have and the true effects as attributes.
# Run from the repository root with the backend available:
#   R_LIBS=.venv/Rlib RFP_PYTHON=.venv/bin/python Rscript data-raw/rfp_trial.R
library(rfp)

sim <- rfp_simulate("cluster_trial", n_strata = 4, clusters_per_stratum = 10,
                    n_per_cluster = 20, effect = "heterogeneous", tau = 1, kappa = 0.5,
                    seed = 3)
rfp_trial <- data.frame(
  y = round(sim$y, 4),
  d = as.integer(sim$d),
  x1 = round(sim$x1, 4),
  x2 = round(sim$x2, 4),
  z = round(sim$z, 4),
  cluster = sim$cluster + 1L,
  stratum = sim$stratum + 1L
)
attr(rfp_trial, "truth") <- attr(sim, "truth")
attr(rfp_trial, "sample_truth") <- c(SATE = mean(sim$tau_i), SATT = mean(sim$tau_i[sim$d == 1]))
save(rfp_trial, file = file.path("data", "rfp_trial.rda"), compress = "xz", version = 2)
message(sprintf("wrote data/rfp_trial.rda: %d rows, %d clusters (%d treated)", nrow(rfp_trial),
                length(unique(rfp_trial$cluster)),
                length(unique(rfp_trial$cluster[rfp_trial$d == 1]))))
