# rfp_simulate(), rfp_geometry() and the embedded data set.

test_that("rfp_simulate returns the backend's simulations with their truth", {
  skip_if_no_backend()
  py <- effects_python()
  triad <- rfp_simulate("tragic_triad", n_clusters = 4, n_per_cluster = 5, seed = 2)
  expect_identical(names(triad), c("y", "x", "cluster", "mu"))
  expect_identical(triad$y, py$simulate.tragic_triad.y)
  expect_identical(triad$mu, py$simulate.tragic_triad.mu)
  expect_equal(triad$mu, abs(triad$x))
  expect_identical(attr(triad, "settings")$design, "tragic_triad")
  trial <- rfp_simulate("cluster_trial", n_strata = 2, clusters_per_stratum = 3,
                        n_per_cluster = 4, effect = "heterogeneous", seed = 7)
  expect_identical(trial$y, py$simulate.cluster_trial.y)
  expect_identical(unname(attr(trial, "truth")), py$simulate.cluster_trial.truth)
  expect_identical(names(attr(trial, "truth")), c("ATE", "ATT", "PLM"))
  expect_true(all(c("y", "d", "x1", "x2", "z", "cluster", "stratum") %in% names(trial)))
  means <- rfp_simulate("clustered_means", n_clusters = 3, n_per_cluster = 4, dim = 2)
  expect_identical(names(means), c("y", "x1", "x2", "cluster", "mu"))
  expect_error(rfp_simulate("cluster_trial", effect = "linear"), "effect must be")
  expect_error(rfp_simulate("tragic_triad", 5), "must be named")
})

test_that("rfp_geometry returns the dimension study as a data frame", {
  skip_if_no_backend()
  geo <- rfp_geometry(dims = c(1, 4), n_clusters = 5, n_per_cluster = 5)
  expect_identical(names(geo), c("dim", "hull_share", "other_cluster", "hull_share_iid"))
  expect_identical(geo$dim, c(1L, 4L))
  expect_true(all(geo$hull_share >= 0 & geo$hull_share <= 1))
})

test_that("the embedded rfp_trial is a stratified cluster trial with a known effect", {
  data(rfp_trial, package = "rfp", envir = environment())
  expect_identical(dim(rfp_trial), c(800L, 7L))
  expect_identical(length(unique(rfp_trial$cluster)), 40L)
  expect_true(all(tapply(rfp_trial$d, rfp_trial$cluster, function(d) length(unique(d))) == 1))
  expect_true(all(tapply(rfp_trial$z, rfp_trial$cluster, function(z) length(unique(z))) == 1))
  strata <- tapply(rfp_trial$stratum, rfp_trial$cluster, function(s) length(unique(s)))
  expect_true(all(strata == 1))
  expect_identical(names(attr(rfp_trial, "truth")), c("ATE", "ATT", "PLM"))
  expect_equal(attr(rfp_trial, "truth")[["ATE"]], 1)
})
