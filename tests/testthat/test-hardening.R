# Issue 10 (hardening): settings checked by the backend's one validator, with
# the same messages as Python; saving and loading without evaluating R
# objects; overlapping roles and extreme data named.

python_message <- function(expr) {
  tryCatch({expr; NA_character_}, error = function(e) rfp:::clean_message(conditionMessage(e)))
}

test_that("settings out of range or of the wrong type: the Python validator's message, by name", {
  skip_if_no_backend()
  df <- clustered_data()
  df$d <- as.numeric(df$g %in% c("c01", "c03", "c05"))
  validate <- function(...) {
    given <- list(...)
    function() rfp:::backend()$facade$validate_settings(given, "fit")
  }
  cases <- list(
    list(quote(rfp(y ~ x1 | g, df, max_steps = 0)), validate(max_steps = 0),
         "max_steps must be a whole number >= 1 (default 2000), got 0"),
    list(quote(rfp(y ~ x1 | g, df, clip_norm = -1)), validate(clip_norm = -1),
         "clip_norm must be a number > 0 or None (NULL in R) (default 1), got -1"),
    list(quote(rfp(y ~ x1 | g, df, seed = -1)), validate(seed = -1),
         "seed must be a whole number >= 0 (default 0), got -1"),
    list(quote(rfp(y ~ x1 | g, df, alpha = "0.5")), validate(alpha = "0.5"),
         "alpha must be a number in [0, 1] (default 0.5), got '0.5' (a string: pass the number itself)"),
    list(quote(rfp(y ~ x1 | g, df, inner_steps = 2.7)), validate(inner_steps = 2.7),
         "inner_steps must be a whole number in [0, 10000] (default 1), got 2.7"),
    list(quote(rfp(y ~ x1 | g, df, first_order = "False")), validate(first_order = "False"),
         "first_order must be True or False (TRUE or FALSE in R) (default False), got 'False'"),
    list(quote(rfp(y ~ x1 | g, df, eval_every = 0L)), validate(eval_every = 0L),
         "eval_every must be a whole number >= 1 (default 10), got 0"))
  for (case in cases) {
    r_message <- tryCatch({eval(case[[1]]); NA_character_}, error = conditionMessage)
    expect_identical(r_message, case[[3]])
    expect_identical(python_message(case[[2]]()), case[[3]])
  }
})

test_that("numbers reach Python unchanged: 1e12 and 0L are named, not coerced", {
  skip_if_no_backend()
  df <- clustered_data()
  expect_warning(err <- tryCatch(rfp(y ~ x1 | g, df, model = "neural_ode", steps = 1e12),
                                 error = conditionMessage), NA)
  expect_identical(err, "steps must be a whole number in [1, 1000], got 1000000000000")
  expect_error(rfp(y ~ x1 | g, df, model = "neural_ode", steps = 0L),
               "steps must be a whole number in [1, 1000], got 0", fixed = TRUE)
  expect_error(rfp(y ~ x1 | g, df, model = "neural_ode", width = 0L),
               "width must be a whole number in [1, 10000], got 0", fixed = TRUE)
  expect_error(rfp(y ~ x1 | g, df, hidden = "32"), "hidden must be a list of layer widths",
               fixed = TRUE)
  expect_error(rfp(y ~ x1 | g, df, alpha = NA), "alpha must be a number in [0, 1] (default 0.5), got NaN",
               fixed = TRUE)
  fit <- rfp(y ~ x1 | g, df, hidden = 3, max_steps = 20, patience = NULL, seed = 2)
  expect_identical(fit$settings$hidden, 3L)
  expect_identical(fit$settings$max_steps, 20L)
})

test_that("rfp_effect, rfp_compare and rfp_balance check their settings the same way", {
  skip_if_no_backend()
  df <- clustered_data()
  df$d <- as.numeric(df$g %in% c("c01", "c03", "c05"))
  for (method in c("dml", "aipw", "t_learner")) {
    expect_error(rfp_effect(y ~ x1 | g, df, "d", method = method, max_steps = 0L),
                 "max_steps must be a whole number >= 1 (default 2000), got 0", fixed = TRUE)
    expect_error(rfp_effect(y ~ x1 | g, df, "d", method = method, clip_norm = -1),
                 "clip_norm must be a number > 0", fixed = TRUE)
  }
  expect_error(rfp_effect(y ~ x1 | g, df, "d", seed = -1),
               "seed must be a whole number >= 0 (default 0), got -1", fixed = TRUE)
  expect_error(rfp_compare(y ~ x1 | g, df, "d", methods = "dml", learning_rate = 0),
               "learning_rate must be a number > 0 (default 0.01), got 0", fixed = TRUE)
  expect_error(rfp_compare(y ~ x1 | g, df, "d", methods = "dml", folds = 1),
               "folds must be a whole number >= 2, got 1", fixed = TRUE)
  expect_error(rfp_balance(y ~ x1 | g, df, "d", method = "hierarchical", lambda = -1),
               "lambda must be a number >= 0 (Inf allowed), got -1", fixed = TRUE)
  expect_error(rfp_balance(y ~ x1 | g, df, "d", max_iter = 0),
               "max_iter must be a whole number in [1, 100000], got 0", fixed = TRUE)
})

# An .rds whose top-level object is an unevaluated promise (CVE-2024-27322):
# R < 4.4 evaluates it inside readRDS(). Built by hand: the serialization
# header of any object, then a PROMSXP (type 5, with its environment as tag)
# whose value is unbound and whose code writes `marker`.
promise_rds <- function(path, marker, compress = FALSE) {
  code <- bquote(writeLines("ran", .(marker)))
  bytes <- serialize(code, NULL, xdr = TRUE, version = 3)
  header <- bytes[1:23]                               # "X\n", versions, native encoding
  int <- function(v) writeBin(as.integer(v), raw(), size = 4, endian = "big")
  payload <- c(header, int(5L + 1024L), int(253L), int(252L), bytes[-(1:23)])
  con <- if (compress) gzfile(path, "wb") else file(path, "wb")
  writeBin(payload, con)
  close(con)
  path
}

test_that("rfp_load refuses a crafted promise .rds without running it", {
  skip_if_no_backend()
  dir <- tempfile("promise")
  dir.create(dir)
  marker <- file.path(dir, "marker")
  for (compress in c(FALSE, TRUE)) {
    path <- promise_rds(file.path(dir, sprintf("evil-%d.rds", compress)), marker, compress)
    expect_error(rfp_load(path), "is an R data file (.rds), not an rfp model file", fixed = TRUE)
    expect_false(file.exists(marker))
  }
  # the payload is live: what rfp_load() used to do (x <- readRDS(path), then
  # look at x) runs it in a fresh R < 4.4 (the marker appears)
  if (getRversion() < "4.4.0") {
    res <- run_rscript(sprintf("x <- readRDS('%s'); try(inherits(x, 'rfp'))", path))
    expect_true(file.exists(marker), label = paste(res$output, collapse = "\n"))
  }
})

edit_saved <- function(path, edit) {
  # rewrite the "extra" (R design) member of an rfp file, as an attacker could
  json <- reticulate::import("json", convert = FALSE)
  np <- reticulate::import("numpy", convert = FALSE)
  builtins <- reticulate::import_builtins(convert = FALSE)
  reader <- reticulate::py_eval("lambda p: dict(__import__('numpy').load(p))", convert = FALSE)
  members <- reticulate::py_call(reader, path)
  extra <- reticulate::py_to_r(json$loads(builtins$str(reticulate::py_get_item(members, "extra"))))
  extra <- edit(extra)
  reticulate::py_set_item(members, "extra", np$array(json$dumps(rfp:::py_plain(extra))))
  writer <- reticulate::py_eval("lambda p, m: __import__('numpy').savez(open(p, 'wb'), **m)",
                                convert = FALSE)
  reticulate::py_call(writer, path, members)
  path
}

test_that("rfp_load runs no code from a crafted formula or predvars", {
  skip_if_no_backend()
  df <- clustered_data()
  fit <- rfp(y ~ poly(x1, 2) + f | g, data = df, hidden = 3, max_steps = 20)
  dir <- tempfile("crafted")
  dir.create(dir)
  marker <- file.path(dir, "marker")
  payload <- sprintf("list(y, writeLines('ran', '%s'))", marker)
  for (field in c("predvars", "terms", "formula")) {
    path <- file.path(dir, paste0(field, ".rfp"))
    rfp_save(fit, path)
    edit_saved(path, function(extra) {
      extra[[field]] <- if (field == "predvars") payload
                        else sprintf("y ~ writeLines('ran', '%s')", marker)
      extra
    })
    expect_error(rfp_load(path), "calls writeLines\\(\\), which rfp_save\\(\\)/rfp_load\\(\\) do not run")
    expect_false(file.exists(marker))
  }
  path <- file.path(dir, "ok.rfp")
  rfp_save(fit, path)
  expect_identical(predict(rfp_load(path), newdata = df), predict(fit, newdata = df))
  myf <- function(x) x
  expect_error(rfp_save(rfp(y ~ myf(x1) | g, data = df, hidden = 3, max_steps = 10), path),
               "the formula calls myf\\(\\)")
})

test_that("a saved fit holds neither the formula's environment nor the training data", {
  skip_if_no_backend()
  make <- function(n_per) {
    junk <- stats::rnorm(2e6)   # 16 MB in the formula's environment
    rfp(y ~ x1 + x2 + f | g, data = clustered_data(n_per = n_per), hidden = 3, max_steps = 20)
  }
  small <- tempfile(fileext = ".rfp")
  large <- tempfile(fileext = ".rfp")
  fit <- make(15)
  rfp_save(fit, small)
  rfp_save(make(500), large)
  expect_lt(file.size(small), 20000)
  expect_lt(abs(file.size(large) - file.size(small)), 200)  # 90 vs 3000 rows: same size
  loaded <- rfp_load(small)
  expect_null(loaded$y)
  expect_null(loaded$design$covariates)
  expect_identical(loaded$settings$hidden, 3L)
  expect_identical(summary(loaded)$loss, summary(fit)$loss)
  expect_error(predict(loaded), "keeps no training data: pass newdata")
  expect_error(plot(loaded, which = "covariate"), "keeps no training data")
  expect_output(print(summary(loaded)), "Observations: 90")
  # Python reads the same file (the R design is an extra member)
  b <- rfp:::backend()
  py_rfp <- reticulate::import("rfp", convert = FALSE)   # the Python API itself
  expect_identical(reticulate::py_to_r(py_rfp$load(small)$n_obs), 90L)
})

test_that("overlapping roles and extreme columns: the backend's messages, in R", {
  skip_if_no_backend()
  df <- clustered_data()
  expect_error(rfp(y ~ y + x1 | g, df, max_steps = 10),
               "^the outcome 'y' is also a control: remove it from the controls$")
  expect_error(rfp_design(y ~ x1 + g | g, df),
               "^the cluster variable 'g' is also a control; rfp never uses the cluster as an input")
  b <- rfp:::backend()
  py_rfp <- reticulate::import("rfp", convert = FALSE)   # the Python API itself
  table <- rfp:::py_columns(list(y = df$y, x1 = df$x1, g = df$g))
  py <- python_message(py_rfp$fit(table, y = "y", x = list("y", "x1"), cluster = "g"))
  expect_identical(py, "the outcome 'y' is also a control: remove it from the controls")
  huge <- df
  huge$x1[3] <- 1.3e154
  expect_error(rfp(y ~ x1 | g, huge, max_steps = 10),
               "control column 'x1' has values as large as 1.3e+154", fixed = TRUE)
  tiny <- df
  tiny$x1 <- tiny$x1 * 1e-300
  expect_error(rfp(y ~ x1 | g, tiny, max_steps = 10), "control column 'x1' has values as small")
  huge$d <- as.numeric(huge$g %in% c("c01", "c02", "c03"))
  expect_error(rfp_balance(y ~ x1 | g, huge, "d"), "covariate column 'x1' has values as large")
})

test_that("predict on zero rows is empty in R as in Python", {
  skip_if_no_backend()
  df <- clustered_data()
  fit <- rfp(y ~ x1 | g, df, hidden = 3, max_steps = 10)
  expect_identical(unname(predict(fit, newdata = df[0, ])), numeric(0))
  b <- rfp:::backend()
  model <- rfp:::backend_model(fit)
  empty <- model$predict(rfp:::py_columns(list(x1 = numeric(0))), as_numpy = TRUE)
  expect_identical(rfp:::r_numeric(empty), numeric(0))
})
