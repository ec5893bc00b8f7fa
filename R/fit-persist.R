# Keeping a fit across sessions.
#
# rfp_save() writes the backend's model file (rfp.persist: an .npz archive of
# numbers and JSON, read without pickle) with the R design stored beside it as
# plain data: the formula and the expanded terms as text, column names,
# factor levels, contrast names. rfp_load() reads that file through the
# backend, never with readRDS(), checks every function the formula calls
# against a short list of known transformations, and rebuilds the terms. So
# loading runs no code from the file, and a saved fit holds neither the
# formula's environment nor the training data.

#' Save and load a fitted rfp model
#'
#' `rfp_save()` writes a fit to one file; `rfp_load()` reads it back, and
#' predictions are identical.
#'
#' **What a saved fit contains**: the backend's parameters (bit for bit) and
#' scaling, the settings, the training history and cluster labels, the
#' numbers [summary.rfp()] prints, and the design as plain data (the formula
#' and its expanded terms as text, the design's column names, factor levels
#' and contrast names, and the coefficients of data-dependent transformations
#' such as `poly()` or `scale()`). It does **not** contain the formula's
#' environment or any training data: a loaded fit predicts, prints and
#' summarises, but `predict()` needs `newdata` and the covariate plot needs
#' the fit from [rfp()].
#'
#' **Safety**: the file is an archive of numbers and text that the backend
#' reads without unpickling, and `rfp_load()` never calls [readRDS()]. Before
#' rebuilding the design it checks that the formula calls only arithmetic and
#' common transformations (`log()`, `I()`, `poly()`, `scale()`, `ns()`, ...);
#' anything else is refused with a message, so a crafted file cannot run code
#' when loaded or at `predict()`. `rfp_save()` refuses such formulas (and
#' custom contrast matrices) in the first place.
#'
#' `saveRDS()` and `readRDS()` still work on fits you made yourself (the fit
#' then keeps its formula's environment and the training data). Do not
#' `readRDS()` an `.rds` file from a source you do not trust, whatever the
#' package: loading an `.rds` can run code embedded in it (CVE-2024-27322 on
#' R < 4.4, and a fit's terms are evaluated at prediction).
#'
#' @param fit A fit from [rfp()].
#' @param path File to write or read (conventionally `.rfp`).
#' @return `rfp_save()`: `path`, invisibly. `rfp_load()`: the fit.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   df <- data.frame(g = rep(1:10, each = 4), x = rnorm(40))
#'   df$y <- df$x + rnorm(40)
#'   fit <- rfp(y ~ x | g, data = df, model = "linear", max_steps = 20)
#'   path <- tempfile(fileext = ".rfp")
#'   rfp_save(fit, path)
#'   same <- rfp_load(path)
#'   identical(predict(fit, df), predict(same, df))
#' }
#' }
#' @export
rfp_save <- function(fit, path) {
  check_fit(fit)
  if (!is.character(path) || length(path) != 1 || is.na(path)) {
    stop("path must be one file name", call. = FALSE)
  }
  design <- saved_design(fit)
  model <- backend_model(fit)
  b <- backend()
  py_call(b$facade$save_model(model, path.expand(path), extra = py_plain(design)))
  invisible(path)
}

#' @rdname rfp_save
#' @export
rfp_load <- function(path) {
  if (!is.character(path) || length(path) != 1 || is.na(path)) {
    stop("path must be one file name", call. = FALSE)
  }
  if (!file.exists(path)) stop(sprintf("no such file: %s", path), call. = FALSE)
  refuse_rds(path)
  b <- backend()
  both <- py_call(b$facade$load_model_with_extra(path.expand(path)))
  model <- reticulate::py_get_item(both, 0L)
  saved <- r_plain(reticulate::py_get_item(both, 1L))
  if (is.null(saved) || !identical(saved$format, saved_format)) {
    stop(sprintf(paste0("%s is an rfp model file without the R design (written by Python's ",
                        "rfp save?): rfp_load reads files written by rfp_save"), path),
         call. = FALSE)
  }
  restore_fit(saved, model, path)
}

saved_format <- "rfp-r-fit-1"

# An .rds (gzip, bzip2, xz or uncompressed R serialization) is refused before
# anything reads it: readRDS() can run code embedded in a file.
refuse_rds <- function(path) {
  head <- readBin(path, "raw", n = 6L)
  starts <- function(bytes) length(head) >= length(bytes) && identical(head[seq_along(bytes)], bytes)
  magic <- list(as.raw(c(0x1f, 0x8b)), charToRaw("BZh"), as.raw(c(0xfd, 0x37, 0x7a, 0x58, 0x5a)),
                charToRaw("X\n"), charToRaw("A\n"), charToRaw("B\n"), charToRaw("RD"))
  rds <- any(vapply(magic, starts, logical(1)))  # gzip, bzip2, xz, plain serialization, save()
  if (rds) {
    stop(sprintf(paste0("%s is an R data file (.rds), not an rfp model file: rfp_load() does ",
                        "not read .rds files, because readRDS() can run code embedded in a ",
                        "file. Save fits with rfp_save(); for an .rds you wrote yourself with ",
                        "saveRDS(), use readRDS()"), path), call. = FALSE)
  }
  invisible(path)
}

# ---- what is saved ---------------------------------------------------------

# The fit's design and summary as plain data (text, numbers, lists); numbers
# in the transformations' coefficients written exactly (hexadecimal).
saved_design <- function(fit) {
  exact <- c("keepNA", "keepInteger", "niceNames", "hexNumeric")
  d <- fit$design
  tt <- d$terms
  predvars <- attr(tt, "predvars")
  predvars <- if (is.null(predvars)) NULL else deparse1(predvars, control = exact)
  check_safe_call(fit$formula, "the formula")
  if (!is.null(predvars)) check_safe_call(str2lang(predvars), "the formula's transformations")
  contrasts <- d$contrasts %||% list()
  if (!all(vapply(contrasts, function(v) is.character(v) && length(v) == 1, logical(1)))) {
    stop("rfp_save() stores contrasts by name (e.g. \"contr.treatment\"); this fit uses a ",
         "contrast matrix: keep it with saveRDS() instead", call. = FALSE)
  }
  s <- summary(fit)
  list(
    format = saved_format,
    formula = deparse1(fit$formula),
    terms = deparse1(stats::formula(tt)),
    predvars = predvars,
    data_classes = as.list(attr(tt, "dataClasses") %||% character()),
    call = deparse1(fit$call),
    outcome = d$outcome, cluster_name = d$cluster_name,
    x_names = as.list(d$x_names), columns = as.list(d$columns), text = as.list(d$text),
    covariate_names = as.list(names(d$covariates) %||% d$covariate_names),
    xlevels = lapply(d$xlevels %||% list(), as.list),
    contrasts = lapply(contrasts, identity),
    n_dropped = length(fit$na.action),
    summary = list(n_train_obs = s$n_train_obs, n_validation_obs = s$n_validation_obs,
                   loss_train = s$loss[["train"]], loss_validation = s$loss[["validation"]])
  )
}

# R plain data -> Python (dicts, lists, scalars): every vector of another
# length than one as a list, so that no NumPy array is made.
py_plain <- function(x) {
  if (is.null(x)) return(reticulate::py_none())
  if (is.list(x)) {
    items <- lapply(x, py_plain)
    if (!is.null(names(x))) return(reticulate::py_dict(as.list(names(x)), unname(items), convert = FALSE))
    return(reticulate::r_to_py(unname(items)))
  }
  if (length(x) == 1) return(reticulate::r_to_py(if (is.na(x)) NaN else unname(x)))
  reticulate::r_to_py(as.list(unname(x)))
}

# ---- what is loaded --------------------------------------------------------

# Functions a saved formula may call: arithmetic, comparisons and common
# transformations whose arguments are the data and constants.
safe_functions <- c(
  "~", "|", "+", "-", "*", "/", "^", ":", "%in%", "(", "I", "offset",
  "log", "log2", "log10", "log1p", "exp", "expm1", "sqrt", "abs", "sin", "cos", "tan",
  "round", "floor", "ceiling", "pmin", "pmax", "poly", "scale", "ns", "bs", "cut",
  "factor", "as.factor", "ordered", "relevel", "interaction", "as.numeric", "as.integer",
  "as.logical", "as.character", "ifelse", "==", "!=", "<", ">", "<=", ">=", "&", "!",
  "list", "c", "text")   # text(): read by the formula layer, never called
safe_packages <- c("base", "stats", "splines")

# Refuse an expression that calls anything outside safe_functions.
check_safe_call <- function(expr, what) {
  walk <- function(e) {
    if (is.call(e)) {
      f <- e[[1]]
      name <- if (is.symbol(f)) {
        as.character(f)
      } else if (is.call(f) && identical(f[[1]], as.name("::")) && length(f) == 3 &&
                 as.character(f[[2]]) %in% safe_packages) {
        as.character(f[[3]])
      } else {
        "<a computed function>"
      }
      if (!name %in% safe_functions) {
        stop(sprintf(paste0("%s calls %s(), which rfp_save()/rfp_load() do not run from a ",
                            "file (they allow arithmetic and %s); keep this fit with saveRDS(), ",
                            "or transform the column before fitting"),
                     what, name, paste0(grep("^[a-z]", safe_functions, value = TRUE), "()",
                                        collapse = ", ")), call. = FALSE)
      }
      args <- as.list(e)[-1]
      for (i in seq_along(args)) if (!identical(args[[i]], quote(expr = ))) walk(args[[i]])
    } else if (!(is.symbol(e) || is.null(e) || (is.atomic(e) && length(e) <= 1e6))) {
      stop(sprintf("%s holds something other than names, numbers and calls", what),
           call. = FALSE)
    }
  }
  walk(expr)
  invisible(TRUE)
}

# Parse saved text into one expression (never evaluated here) and check it.
safe_parse <- function(text, what, path) {
  if (!is.character(text) || length(text) != 1) {
    stop(sprintf("%s is damaged: %s is not text", path, what), call. = FALSE)
  }
  expr <- tryCatch(str2lang(text), error = function(e) {
    stop(sprintf("%s is damaged: %s does not parse", path, what), call. = FALSE)
  })
  tryCatch(check_safe_call(expr, what), error = function(e) {
    stop(sprintf("%s: %s", path, conditionMessage(e)), call. = FALSE)
  })
  expr
}

# A formula from checked text: `~` builds it without evaluating its sides.
safe_formula <- function(text, what, path) {
  expr <- safe_parse(text, what, path)
  if (!is.call(expr) || !identical(expr[[1]], as.name("~"))) {
    stop(sprintf("%s is damaged: %s is not a formula", path, what), call. = FALSE)
  }
  f <- eval(expr, baseenv())
  environment(f) <- new.env(parent = globalenv())  # empty: transformations found on the search path
  f
}

text_vector <- function(x) as.character(unlist(x))

# The fit object from the saved design and the backend model (whose settings
# the backend has validated).
restore_fit <- function(saved, model, path) {
  formula <- safe_formula(saved$formula, "the formula", path)
  tt <- stats::terms(safe_formula(saved$terms, "the terms", path))
  if (!is.null(saved$predvars)) {
    attr(tt, "predvars") <- safe_parse(saved$predvars, "the formula's transformations", path)
  }
  classes <- text_vector(saved$data_classes)
  if (length(classes)) attr(tt, "dataClasses") <- stats::setNames(classes, names(saved$data_classes))
  x_names <- text_vector(saved$x_names)
  columns <- text_vector(saved$columns)
  text <- text_vector(saved$text)
  if (length(x_names) != length(columns) || !(length(x_names) || length(text))) {
    stop(sprintf("%s is damaged: the design's column names do not match", path), call. = FALSE)
  }
  backend_names <- unlist(r_plain(model$x_names))
  if (!identical(as.character(backend_names), columns)) {
    stop(sprintf("%s is damaged: the design's columns differ from the model's", path),
         call. = FALSE)
  }
  design <- structure(list(
    x_names = x_names, columns = columns, outcome = text_vector(saved$outcome),
    cluster_name = text_vector(saved$cluster_name), formula = formula, terms = tt,
    xlevels = lapply(saved$xlevels, text_vector),
    contrasts = if (length(saved$contrasts)) lapply(saved$contrasts, text_vector) else NULL,
    na_action = NULL, covariates = NULL, text = text,
    covariate_names = text_vector(saved$covariate_names)), class = "rfp_design")
  settings <- lapply(r_plain(model$config), function(v) if (is.list(v)) unlist(v) else v)
  call <- tryCatch(str2lang(saved$call), error = function(e) NULL)
  new_rfp_fit(list(
    call = call, formula = formula, settings = settings, design = design,
    y = NULL, fitted.values = NULL, residuals = NULL, cluster = NULL,
    na.action = NULL, n_dropped = as.integer(saved$n_dropped %||% 0L),
    saved_summary = lapply(saved$summary, as.numeric)
  ), model, settings, x_names)
}

# The fit's Python model: the live reference, or rebuilt from the stored bytes.
backend_model <- function(fit) {
  check_fit(fit)
  model <- fit$backend$model
  if (is.null(model) || reticulate::py_is_null_xptr(model)) {
    b <- backend()
    path <- tempfile(fileext = ".npz")
    on.exit(unlink(path), add = TRUE)
    writeBin(fit$model_bytes, path)
    model <- py_call(b$facade$load_model(path))
    fit$backend$model <- model  # an environment: the cache survives this call
  }
  model
}

model_bytes <- function(model) {
  path <- tempfile(fileext = ".npz")
  on.exit(unlink(path), add = TRUE)
  py_call(model$save(path))
  readBin(path, "raw", n = file.size(path))
}

check_fit <- function(fit) {
  if (!inherits(fit, "rfp")) stop("expected a fit from rfp()", call. = FALSE)
  if (!is.raw(fit$model_bytes) || length(fit$model_bytes) == 0) {
    stop("this rfp fit has lost its backend model; refit it", call. = FALSE)
  }
  if (!is.environment(fit$backend)) {
    stop("this rfp fit is damaged (no backend slot); refit it or load it with rfp_load()",
         call. = FALSE)
  }
  invisible(fit)
}

# Is this a fit restored by rfp_load() (no training data)?
loaded_fit <- function(fit) is.null(fit$y) && !is.null(fit$saved_summary)

no_training_data <- function(what) {
  stop(sprintf(paste0("this fit was loaded by rfp_load(), which keeps no training data: %s ",
                      "(or use the fit from rfp())"), what), call. = FALSE)
}
