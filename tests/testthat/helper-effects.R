# Shared by the effect tests: a small stratified cluster trial, the R
# estimators on it, and the same estimators run by the Python API alone in
# a subprocess (python_effects_reference.py). Computed once per session.

effect_settings <- list(model = "linear", max_steps = 20, learning_rate = 0.05)

.effects_cache <- new.env(parent = emptyenv())

trial_data <- function() {
  sim <- rfp_simulate("cluster_trial", n_strata = 2, clusters_per_stratum = 6,
                      n_per_cluster = 10, effect = "heterogeneous", seed = 3)
  set.seed(4)
  data.frame(y = sim$y, d = sim$d, x1 = sim$x1, x2 = sim$x2, z = sim$z,
             g = sprintf("k%02d", sim$cluster), s = sprintf("s%d", sim$stratum),
             d_within = rbinom(nrow(sim), 1, 0.5), stringsAsFactors = FALSE)
}

# The R side: every estimator with the reference script's settings.
effects_r <- function() {
  if (!is.null(.effects_cache$r)) return(.effects_cache$r)
  df <- trial_data()
  f <- y ~ x1 + x2 + z | g
  run <- function(...) do.call(rfp_effect, c(list(f, df, "d", folds = 2, seed = 1), list(...),
                                             effect_settings))
  out <- list(
    data = df,
    dml = run(method = "dml"),
    ate = run(method = "aipw", estimand = "ATE"),
    att = run(method = "aipw", estimand = "ATT"),
    learner = do.call(rfp_effect, c(list(f, df, "d", method = "t_learner", seed = 1),
                                    effect_settings)),
    compare = suppressWarnings(do.call(rfp_compare, c(
      list(f, df, "d", fe = ~s, truth = c(ATE = 1, ATT = 1.25), folds = 2, seed = 1),
      effect_settings))),
    entropy = rfp_balance(f, df, "d"),
    cluster = rfp_balance(f, df, "d", method = "cluster", icc = 0.2),
    hierarchical = rfp_balance(y ~ x1 + x2 | g, df, "d_within", method = "hierarchical",
                               lambda = 0.5))
  .effects_cache$r <- out
  out
}

# The Python side, as a named list of numeric vectors.
effects_python <- function() {
  if (!is.null(.effects_cache$python)) return(.effects_cache$python)
  df <- trial_data()
  dir <- tempfile("effects")
  dir.create(dir)
  write_full_precision(df, file.path(dir, "data.csv"))
  write_full_precision(df[1:15, ], file.path(dir, "new.csv"))
  status <- system2(rfp_python()$python,
                    c(test_path("python_effects_reference.py"),
                      file.path(dir, c("data.csv", "new.csv", "out.csv"))),
                    stdout = TRUE, stderr = TRUE, env = "JAX_PLATFORMS=cpu")
  if (!is.null(attr(status, "status"))) stop(paste(status, collapse = "\n"))
  long <- utils::read.csv(file.path(dir, "out.csv"), colClasses = c("character", "integer",
                                                                     "character"))
  out <- lapply(split(long, long$name), function(part) as.numeric(part$value[order(part$index)]))
  .effects_cache$python <- out
  out
}
