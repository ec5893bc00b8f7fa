# Finding the backend.  The checks that Python is missing run in a fresh R
# process, since this one may already have started it.

test_that("RFP_PYTHON comes first and must exist", {
  withr_env <- function(value, code) {
    old <- Sys.getenv("RFP_PYTHON", unset = NA)
    Sys.setenv(RFP_PYTHON = value)
    on.exit(if (is.na(old)) Sys.unsetenv("RFP_PYTHON") else Sys.setenv(RFP_PYTHON = old))
    code
  }
  withr_env("/no/such/python", expect_error(rfp_python(), "RFP_PYTHON is set to '/no/such/python'"))
  py <- tempfile()
  file.create(py)
  found <- withr_env(py, rfp_python())
  expect_identical(found, list(python = py, source = "RFP_PYTHON"))
})

test_that("a checkout is found by walking up to rfp's pyproject.toml", {
  root <- tempfile("checkout")
  dir.create(file.path(root, ".venv", "bin"), recursive = TRUE)
  dir.create(file.path(root, "a", "b"), recursive = TRUE)
  writeLines(c("[project]", "name = \"rfp\""), file.path(root, "pyproject.toml"))
  file.create(file.path(root, ".venv", "bin", "python"))
  expect_identical(rfp:::rfp_checkout(file.path(root, "a", "b")), normalizePath(root))
  writeLines(c("[project]", "name = \"other\""), file.path(root, "pyproject.toml"))
  expect_null(rfp:::rfp_checkout(file.path(root, "a", "b")))
})

test_that("Python errors lose the exception class and traceback", {
  expect_identical(rfp:::clean_message("ValueError: column 'x' is bad\n"), "column 'x' is bad")
  expect_identical(rfp:::clean_message(
    "TypeError: bad\n\nDetailed traceback:\n  File \"x.py\", line 1"), "bad")
})

test_that("library(rfp) works without Python; the first fit says how to get it", {
  empty <- tempfile("home")
  dir.create(empty)
  res <- run_rscript(c(
    "library(rfp)",
    "cat('loaded\\n')",
    "print(is.null(rfp_python()))",
    "print(rfp_available())",
    "df <- data.frame(y = rnorm(20), x = rnorm(20), g = rep(1:4, 5))",
    "d <- rfp_design(y ~ x | g, df)",
    "cat('parsed', ncol(d$x), '\\n')",
    "msg <- tryCatch(rfp(y ~ x | g, data = df), error = conditionMessage)",
    "cat(msg, '\\n')"),
    env = c("RFP_PYTHON=", paste0("WORKON_HOME=", empty)), wd = empty)
  out <- paste(res$output, collapse = "\n")
  expect_identical(res$status, 0L, label = out)
  expect_match(out, "loaded")
  expect_match(out, "[1] TRUE\n[1] FALSE", fixed = TRUE)
  expect_match(out, "parsed 1")
  expect_match(out, "set the environment variable RFP_PYTHON", fixed = TRUE)
  expect_match(out, "install_rfp()", fixed = TRUE)
})

test_that("every entry point can be the first call of a session", {
  skip_if_no_backend()
  first_calls <- c(
    rfp = "rfp(y ~ x1 | cluster, rfp_trial, model = 'linear', max_steps = 5)",
    rfp_effect = "rfp_effect(y ~ x1 + z | cluster, rfp_trial, 'd', folds = 2, model = 'linear', max_steps = 5)",
    rfp_compare = "rfp_compare(y ~ x1 + z | cluster, rfp_trial, 'd', methods = 'fixed_effects')",
    rfp_balance = "rfp_balance(y ~ x1 + z | cluster, rfp_trial, 'd')",
    rfp_fixed_effects = "rfp_fixed_effects(y ~ x1 + z | cluster, rfp_trial, 'd', fe = ~ stratum)",
    rfp_simulate = "rfp_simulate('tragic_triad', n_clusters = 4, seed = 1)",
    rfp_geometry = "rfp_geometry(dims = 1, n_clusters = 3, n_per_cluster = 3, seed = 1)")
  # reticulate put the backend's bin/ on this session's PATH; a new session
  # would not have it there (and would find another Python first)
  python <- rfp_python()$python
  path <- strsplit(Sys.getenv("PATH"), .Platform$path.sep, fixed = TRUE)[[1]]
  path <- path[normalizePath(path, mustWork = FALSE) != normalizePath(dirname(python))]
  env <- c(paste0("RFP_PYTHON=", python),
           paste0("PATH=", paste(path, collapse = .Platform$path.sep)))
  for (name in names(first_calls)) {
    res <- run_rscript(c("suppressPackageStartupMessages(library(rfp))", "data(rfp_trial)",
                         paste0("invisible(", first_calls[[name]], ")"), "cat('ok\\n')"),
                       env = env)
    out <- paste(res$output, collapse = "\n")
    expect_identical(res$status, 0L, label = paste(name, out))
    expect_match(out, "ok", label = name)
  }
})

test_that("install_rfp needs to know where the source is", {
  old <- setwd(tempdir())
  on.exit(setwd(old))
  expect_error(install_rfp(), "pass path =")
})
