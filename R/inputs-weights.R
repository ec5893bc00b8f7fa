# `weights =`: case (sampling) weights, as in lm, fixest and estimatr, and
# the former modes "obs" / "cluster" (now `equal_clusters`), kept for one
# release with a warning.

# The case weights of the rows of `data`: `expr` (the unevaluated `weights`
# argument) is evaluated in the data, then in `env`, as lm does: a string
# names a weight column, a numeric vector gives one weight per row, a bare
# column name takes that column. Returns list(values = one number per row of
# `data` or NULL for none, equal_clusters = TRUE / FALSE for a former mode,
# else NULL). The values are checked by the backend's validator
# (python/rfp/settings.py, case_weight_values), so R and Python name the
# same row: a missing, negative or infinite weight is an error (with `rows`,
# the rows `subset` keeps, only in those rows).
case_weights_arg <- function(expr, data, env, rows = NULL) {
  if (is.null(expr)) return(list(values = NULL, equal_clusters = NULL))
  data <- as_data_frame(data)
  value <- tryCatch(eval(expr, data, env), error = function(e) {
    stop(sprintf("weights = %s could not be evaluated in the data: %s", deparse1(expr),
                 conditionMessage(e)), call. = FALSE)
  })
  if (is.null(value)) return(list(values = NULL, equal_clusters = NULL))
  if (is.character(value) && length(value) == 1 && value %in% c("obs", "cluster") &&
      !value %in% names(data)) {
    equal <- value == "cluster"
    warning(sprintf(paste0(
      "weights = \"%s\" is deprecated and will be removed in the next release: weights now ",
      "takes case weights (a column name or one number per row, as in lm and fixest); use ",
      "equal_clusters = %s for %s"), value, if (equal) "TRUE" else "FALSE",
      if (equal) "equal cluster weights" else "each observation counting once"),
      call. = FALSE)
    return(list(values = NULL, equal_clusters = equal))
  }
  name <- "weights"
  if (is.character(value) && length(value) == 1 && value %in% c("obs", "cluster")) {
    # a column of that name wins over the former mode (as in the backend's validator)
    warning(sprintf(paste0(
      "weights = \"%s\" names the data's column '%s', used as case weights; the former ",
      "reading of \"%s\" (equal_clusters = %s) no longer applies when the data have such a ",
      "column (pass equal_clusters for that)"), value, value, value,
      if (value == "cluster") "TRUE" else "FALSE"), call. = FALSE)
  }
  if (is.character(value) && length(value) == 1) {
    if (!value %in% names(data)) {
      stop(sprintf(paste0("weights: column '%s' not found in the data; available columns: %s ",
                          "(or pass the weights themselves, one number per row)"),
                   value, paste(names(data), collapse = ", ")), call. = FALSE)
    }
    name <- sprintf("weights (column '%s')", value)
    value <- data[[value]]
    if (!is.numeric(value)) {
      stop(sprintf("%s must be numeric, but has class %s; give one number >= 0 per row", name,
                   class(value)[1]), call. = FALSE)
    }
  }
  if (!is.numeric(value)) {
    stop(sprintf("weights must be a column name or one number >= 0 per row (case weights), got %s",
                 class(value)[1]), call. = FALSE)
  }
  if (length(value) != nrow(data)) {
    stop(sprintf(paste0("weights has %d value(s) but the data have %d rows: give one case ",
                        "weight per row, or the name of a weight column"),
                 length(value), nrow(data)), call. = FALSE)
  }
  value <- as.numeric(value)
  # with `subset` (its row numbers `rows`), only the rows kept are checked, as
  # lm subsets its weights first; the others stand in as 1 so that a message
  # still names the row of the data given
  checked <- value
  if (!is.null(rows)) checked[setdiff(seq_along(checked), rows)] <- 1
  b <- backend()
  tryCatch(b$facade$case_weight_values(py_column(checked), name), error = function(e) {
    stop(clean_message(conditionMessage(e)), call. = FALSE)
  })
  list(values = value, equal_clusters = NULL)
}

# The one capture point of `weights =` and `subset =`: every front end (rfp,
# rfp_effect, rfp_compare, rfp_balance, rfp_heterogeneity) starts with
# `inputs <- captured_inputs()`. Reads the calling front end's `data`, its
# unevaluated `weights` (when it has that argument) and `subset` (when it was
# given), evaluated in the data and then in the front end's caller, as lm
# does. Returns list(data = the rows `subset` keeps, w = their case weights
# as `case_weights_arg` returns them).
captured_inputs <- function() {
  frame <- parent.frame()
  env <- parent.frame(2L)
  formals <- names(formals(sys.function(sys.parent())))
  weights_expr <- if ("weights" %in% formals) eval(quote(substitute(weights)), frame) else NULL
  has_subset <- "subset" %in% formals && !eval(quote(missing(subset)), frame)
  subset_expr <- if (has_subset) eval(quote(substitute(subset)), frame) else NULL
  weighted_data(weights_expr, subset_expr, has_subset, get("data", envir = frame), env)
}

# The data after `subset =` and their case weights (`case_weights_arg`), cut
# to the same rows (`has_subset`: the caller was given `subset`, whose
# unevaluated argument is `subset_expr`).
weighted_data <- function(weights_expr, subset_expr, has_subset, data, env) {
  kept <- if (has_subset) subset_data(data, subset_expr, env) else NULL
  w <- case_weights_arg(weights_expr, data, env, rows = attr(kept, "rows"))
  if (has_subset) {
    data <- kept
    if (!is.null(w$values)) w$values <- w$values[attr(data, "rows")]
  }
  list(data = data, w = w)
}

# `equal_clusters` among the settings in `dots` (rfp_effect, rfp_compare),
# from a former `weights` mode when one was given (`equal_clusters_setting`).
dots_with_equal_clusters <- function(dots, w) {
  if (is.null(w$equal_clusters)) return(dots)
  dots$equal_clusters <- equal_clusters_setting(dots$equal_clusters %||% w$equal_clusters,
                                                !is.null(dots$equal_clusters), w$equal_clusters)
  dots
}

# `equal_clusters` from the argument and a former `weights` mode: the mode
# decides unless the argument was given and says otherwise (an error).
equal_clusters_setting <- function(equal_clusters, given, old) {
  if (is.null(old)) return(equal_clusters)
  if (given && !identical(equal_clusters, old)) {
    stop(sprintf(paste0("weights = \"%s\" (the former mode) contradicts equal_clusters = %s; ",
                        "drop weights and keep equal_clusters"),
                 if (old) "cluster" else "obs", format(equal_clusters)), call. = FALSE)
  }
  old
}

# The case weights of the rows a design kept (`design$rows`: rows of the data
# it was built from), as the backend takes them (NULL: none).
kept_case_weights <- function(w, design) {
  if (is.null(w$values)) return(NULL)
  w$values[design$rows]
}

# What summaries print about the weights of a fit.
weights_label <- function(settings) {
  w <- settings$weights
  cases <- if (is.numeric(w) && length(w)) "case weights" else "none"
  if (isTRUE(settings$equal_clusters)) paste(cases, "(clusters weigh equally)") else cases
}
