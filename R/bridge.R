# Calling the backend's estimators: their Python warnings become R warnings,
# their fit settings are checked in R, and one progress bar follows the many
# fits an estimator makes (cross-fitting: folds x nuisances).

# Evaluate `expr` (a call into Python) recording Python warnings; a Python
# error becomes an R error, and each recorded user-facing warning is raised
# again as an R warning with its message (class `rfp_functional_form_warning`
# for the backend's FunctionalFormWarning).
py_call_warnings <- function(expr) {
  b <- backend()
  py_warnings <- reticulate::import("warnings", convert = FALSE)
  context <- py_warnings$catch_warnings(record = TRUE)
  caught <- context$`__enter__`()
  open <- TRUE
  on.exit(if (open) context$`__exit__`(NULL, NULL, NULL), add = TRUE)
  py_warnings$simplefilter("always", b$builtins$UserWarning)
  value <- py_call(expr)
  context$`__exit__`(NULL, NULL, NULL)
  open <- FALSE
  for (w in python_warnings(caught)) warning(w)
  value
}

# Recorded Python warnings -> R warning conditions (developer-facing
# categories such as DeprecationWarning are left out).
python_warnings <- function(caught) {
  b <- backend()
  quiet <- c("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning", "ImportWarning")
  out <- list()
  for (i in seq_len(reticulate::py_len(caught))) {
    w <- reticulate::py_get_item(caught, i - 1L)
    category <- r_plain(w$category$`__name__`)
    if (category %in% quiet) next
    message <- r_plain(b$builtins$str(w$message))
    class <- if (category == "FunctionalFormWarning") "rfp_functional_form_warning" else NULL
    out[[length(out) + 1L]] <- warningCondition(message, class = c(class, "rfp_python_warning"))
  }
  out
}

# Fit settings for the nuisance models of an estimator, given in `...`:
# checked names, whole numbers as integers, `hidden` as a list, NULL as None.
# `extra` names further keyword arguments the estimator itself takes.
backend_settings <- function(settings, extra = character()) {
  known <- c("model", "hidden", "activation", "alpha", "inner_steps", "inner_lr",
             "first_order", "weights", "penalty", "learning_rate", "clip_norm", "schedule",
             "max_steps", "patience", "eval_every", "validation_share", "width", "steps",
             "dtype", "batch_clusters", "devices")
  if (length(settings) && (is.null(names(settings)) || any(!nzchar(names(settings))))) {
    stop("settings in ... must be named (e.g. model = \"linear\", max_steps = 200)",
         call. = FALSE)
  }
  if ("loss" %in% names(settings)) {
    stop("loss is set per nuisance model (squared for outcomes, logistic for a binary ",
         "treatment); do not pass loss", call. = FALSE)
  }
  unknown <- setdiff(names(settings), c(known, extra))
  if (length(unknown)) {
    stop(sprintf("unknown setting(s) %s; known: %s",
                 paste0("'", unknown, "'", collapse = ", "),
                 paste(c(known, extra), collapse = ", ")), call. = FALSE)
  }
  whole <- c("inner_steps", "max_steps", "patience", "eval_every", "width", "steps",
             "batch_clusters")
  for (name in intersect(names(settings), whole)) {
    if (!is.null(settings[[name]])) settings[[name]] <- check_whole(settings[[name]], name, 0)
  }
  if (!is.null(settings$hidden)) {
    settings$hidden <- as.list(check_whole(settings$hidden, "hidden", 1, scalar = FALSE))
  }
  for (name in names(settings)) {
    if (is.null(settings[[name]])) settings[name] <- list(reticulate::py_none())
  }
  settings
}

# One text progress bar over `n_fits` backend fits of up to `max_steps`
# steps each. The backend reports (step, total, ...) every few steps of the
# fit in progress; a step that does not exceed the last one starts a new fit.
fits_progress <- function(n_fits, verbose) {
  if (!isTRUE(verbose) || n_fits < 1) return(list(settings = list(), close = function() NULL))
  bar <- utils::txtProgressBar(min = 0, max = n_fits, style = 3)
  state <- new.env(parent = emptyenv())
  state$fit <- 0
  state$last <- Inf
  update <- function(step, total, train_loss, validation_loss) {
    step <- as.numeric(step)
    if (step <= state$last) state$fit <- state$fit + 1
    state$last <- step
    utils::setTxtProgressBar(bar, min(state$fit - 1 + step / as.numeric(total), n_fits))
    invisible(NULL)
  }
  list(settings = list(progress = reticulate::r_to_py(update, convert = TRUE)),
       close = function() {
         utils::setTxtProgressBar(bar, n_fits)
         close(bar)
       })
}
