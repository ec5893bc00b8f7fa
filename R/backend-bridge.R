# Calling the backend's estimators: their Python warnings become R warnings
# and their settings are checked by the backend's validator (the progress bar
# over their many fits is in backend-progress.R).

# Call `f` (a function of the facade, e.g. `backend()$facade$fit`) with
# `args` (a list, as for do.call), recording Python warnings
# (facade.call_with_warnings); a Python error
# becomes an R error, and each recorded user-facing warning is raised again
# as an R warning with its message and class `rfp_<name>_warning` for the
# backend's warning class <Name>Warning (`warning_class()`).
py_call_warnings <- function(f, args = list()) {
  both <- py_call(do.call(backend()$facade$call_with_warnings, c(list(f), args)))
  for (w in python_warnings(r_plain(reticulate::py_get_item(both, 1L)))) warning(w)
  reticulate::py_get_item(both, 0L)
}

# Recorded Python warnings (a list of category, module, message) -> R warning
# conditions (developer-facing categories such as DeprecationWarning are left
# out).
python_warnings <- function(caught) {
  quiet <- c("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning", "ImportWarning")
  out <- list()
  for (w in caught) {
    if (w$category %in% quiet) next
    class <- if (startsWith(w$module, "rfp")) warning_class(w$category) else NULL
    out[[length(out) + 1L]] <- warningCondition(w$message, class = c(class, "rfp_python_warning"))
  }
  out
}

# The R class of one of the backend's warnings: NotConvergedWarning ->
# "rfp_not_converged_warning" (FunctionalFormWarning, SmallClusterWarning,
# StoppedAtOnceWarning, NoBetterThanMeanWarning, DivergenceWarning alike).
warning_class <- function(category) {
  snake <- tolower(gsub("([a-z0-9])([A-Z])", "\\1_\\2", sub("Warning$", "", category)))
  paste0("rfp_", snake, "_warning")
}

# Settings are checked by the backend's one validator (python/rfp/settings.py,
# `validate(settings, context)`), so that R and Python reject the same values
# with the same message. Values go across as they are: numbers as numbers
# (1e12 stays 1e12 and is judged in Python, never coerced to an integer
# here), NULL as None, NA as NaN, vectors of another length than one (and
# `hidden`) as lists. `context` names the entry point ("fit", "dml", "aipw",
# "t_learner", "compare", "balance:entropy", ...). `rename` maps backend
# names to the R argument names used in messages (lam -> lambda).
# Returns list(py = the checked values as Python objects, to pass on;
# r = the same as R values).
check_settings <- function(settings, context, rename = character()) {
  if (length(settings) && (is.null(names(settings)) || any(!nzchar(names(settings))))) {
    stop("settings in ... must be named (e.g. model = \"linear\", max_steps = 200)",
         call. = FALSE)
  }
  b <- backend()
  values <- unname(Map(py_setting, settings, names(settings)))
  given <- reticulate::py_dict(as.list(names(settings)), values, convert = FALSE)
  checked <- tryCatch(b$facade$validate_settings(given, context), error = function(e) {
    msg <- clean_message(conditionMessage(e))
    for (name in names(rename)) msg <- sub(sprintf("^%s ", name), paste0(rename[[name]], " "), msg)
    stop(msg, call. = FALSE)
  })
  py <- stats::setNames(lapply(names(settings), function(k) reticulate::py_get_item(checked, k)),
                        names(settings))
  list(py = py, r = lapply(py, r_setting))
}

# One setting, R -> Python, unchanged in value (see check_settings).
py_setting <- function(value, name) {
  if (is.null(value)) return(reticulate::py_none())
  if (inherits(value, "python.builtin.object")) return(value)
  if (is.factor(value)) value <- as.character(value)
  if (!is.atomic(value)) return(reticulate::r_to_py(value))
  items <- lapply(as.list(value), function(v) if (is.na(v)) NaN else v)
  if (length(value) == 1 && name != "hidden") return(reticulate::r_to_py(items[[1]]))
  reticulate::r_to_py(items)
}

# A checked setting, Python -> R (a tuple such as `hidden` as a vector).
r_setting <- function(value) {
  out <- reticulate::py_to_r(value)
  if (is.list(out)) unlist(out) else out
}

# The variance setting: `vcov` ("CR1", "CR2", "wild") or its alias `se_type`
# (estimatr's name), for check_settings, which checks the value (rule "vcov"
# in python/rfp/settings.py): list(value, rename), `rename` naming se_type
# in the validator's messages when that was the argument given. A formula
# such as `~cluster` gets an error saying where the cluster goes.
vcov_setting <- function(vcov, se_type = NULL) {
  types <- c("CR1", "CR2", "wild")
  rename <- character()
  if (!is.null(se_type)) {
    if (!identical(vcov, types) && !identical(vcov, se_type)) {
      stop("give vcov or se_type, not both (they are the same setting)", call. = FALSE)
    }
    vcov <- se_type
    rename <- c(vcov = "se_type")
  }
  if (inherits(vcov, "formula")) {
    stop("vcov takes \"CR1\", \"CR2\" or \"wild\"; the cluster is the right side of the ",
         "formula's `|` (y ~ x | cluster), not a vcov formula", call. = FALSE)
  }
  if (identical(vcov, types)) vcov <- "CR1"
  list(value = vcov, rename = rename)
}
