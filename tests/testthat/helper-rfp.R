# Shared by the tests: small clustered data and a guard for tests that need
# the Python backend.

skip_if_no_backend <- function() {
  skip_if_not(rfp_available(),
              "the rfp Python backend is not available (set RFP_PYTHON or run install_rfp())")
}

clustered_data <- function(n_clusters = 6, n_per = 15, seed = 1) {
  set.seed(seed)
  n <- n_clusters * n_per
  g <- rep(sprintf("c%02d", seq_len(n_clusters)), each = n_per)
  mu <- rnorm(n_clusters)[match(g, unique(g))]
  x1 <- mu + rnorm(n, sd = 0.5)
  x2 <- rnorm(n)
  f <- factor(sample(c("u", "v", "w"), n, replace = TRUE))
  y <- abs(x1) + 0.5 * x2 + c(u = 0, v = 0.3, w = -0.2)[as.character(f)] +
    rnorm(n_clusters)[match(g, unique(g))] * 0.3 + rnorm(n, sd = 0.2)
  data.frame(y = unname(y), x1 = x1, x2 = x2, f = f, g = g, stringsAsFactors = FALSE)
}

# Run R code in a fresh Rscript process (for what must not share this
# session: a missing backend, a new session reading a saved fit).
run_rscript <- function(code, env = character(), wd = tempdir()) {
  force(env)  # before the working directory changes
  script <- tempfile(fileext = ".R")
  writeLines(code, script)
  old <- setwd(wd)
  on.exit(setwd(old), add = TRUE)
  libs <- paste(.libPaths(), collapse = .Platform$path.sep)
  out <- suppressWarnings(system2(file.path(R.home("bin"), "Rscript"), c("--vanilla", script),
                                  stdout = TRUE, stderr = TRUE,
                                  env = c(paste0("R_LIBS=", libs), env)))
  list(output = out, status = attr(out, "status") %||% 0L)
}

`%||%` <- function(a, b) if (is.null(a)) b else a

write_full_precision <- function(df, path) {
  cols <- lapply(df, function(v) if (is.double(v)) sprintf("%.17g", v) else as.character(v))
  utils::write.csv(as.data.frame(cols, stringsAsFactors = FALSE), path, row.names = FALSE,
                   quote = FALSE)
}

# The tests use few clusters to stay fast; the warning that `|` names a
# cluster with few levels (tested in test-formula.R) would repeat in each.
options(rfp.few_clusters = 0L)
