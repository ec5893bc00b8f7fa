# rfp_heterogeneity(): the best linear projection of tau(x) and GATES from the
# cross-fitted AIPW scores (the backend's rfp.heterogeneity).

#' Heterogeneous effects with uncertainty
#'
#' Fits AIPW (ATE) as [rfp_effect()] does and regresses its cross-fitted
#' scores: on the centred `covariates` (the best linear projection of
#' \eqn{\tau(x)}, as grf's `best_linear_projection`; the intercept is the ATE)
#' and on indicators of `groups` quantile groups of the out-of-fold
#' \eqn{\hat\tau(x) = \hat\mu_1(x) - \hat\mu_0(x)} (GATES, formed within each
#' fold), with CR1 standard errors by cluster and t on G - 1 df. The GATES
#' intervals are too narrow with tens of clusters (see the backend's
#' `rfp/heterogeneity.py`).
#'
#' @inheritParams rfp_effect
#' @param covariates Names of controls to project \eqn{\tau(x)} on (`NULL`
#'   skips the projection).
#' @param groups Number of GATES groups (`0` skips them).
#' @return A list of class `rfp_heterogeneity`: `blp` and `gates` (data frames
#'   with `estimate`, `std.error`, `conf.low`, `conf.high`, `p.value`) and
#'   `effect`, the AIPW fit.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   het <- rfp_heterogeneity(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
#'                            covariates = "x1", groups = 3, nuisance = "linear")
#'   het$blp
#' }
#' }
#' @export
rfp_heterogeneity <- function(formula, data, treatment, covariates = NULL, groups = 5L,
                              folds = 5L, seed = 0L, repeats = NULL,
                              nuisance = c("select", "method", "linear", "constant"),
                              na.action = stats::na.fail, progress = NULL, subset = NULL, ...) {
  if (!missing(subset)) data <- subset_data(data, substitute(subset), parent.frame())
  # groups: the backend's validator (rule "groups"), so R and Python say the same
  groups <- check_settings(list(groups = groups), "heterogeneity")$r$groups %||% 0L
  # `weights` unevaluated (a bare column name is no object here): the backend
  # refuses any value with its message, so its name goes across as text
  given <- match.call(expand.dots = FALSE)$...
  if ("weights" %in% names(given)) {
    i <- match("weights", names(given))
    dots <- lapply(seq_along(given)[-i], function(j) ...elt(j))
    names(dots) <- names(given)[-i]
    w <- given[[i]]
    dots$weights <- if (is.character(w)) w else deparse1(w)
  } else {
    dots <- list(...)
  }
  progress <- progress_setting(progress, dots)
  dots$verbose <- NULL
  # the backend's validator checks every setting (R and Python say the same)
  checked <- check_settings(c(list(folds = folds, seed = seed, repeats = repeats,
                                   nuisance = if (missing(nuisance)) "select" else nuisance),
                              dots), "aipw")
  settings <- checked$r
  folds <- settings$folds
  ed <- effect_design(formula, data, treatment, na.action, binary = TRUE,
                      what = "rfp_heterogeneity()")
  repeats <- settings$repeats %||% default_repeats(ed$cluster)
  checked$py$repeats <- repeats
  if (!is.null(covariates)) {
    missing <- setdiff(covariates, ed$x_names)
    if (length(missing)) {
      stop(sprintf("covariates %s are not among the controls of the formula (%s)",
                   paste0("'", missing, "'", collapse = ", "),
                   paste(ed$x_names, collapse = ", ")), call. = FALSE)
    }
    covariates <- as.list(ed$columns[match(covariates, ed$x_names)])
  }
  columns <- effect_columns(ed)
  b <- backend()
  n_fits <- (2 + individual_propensity(ed, settings$propensity)) * folds * repeats
  progress <- fits_progress(n_fits, progress)
  on.exit(progress$close(), add = TRUE)
  args <- list(columns$table, y = columns$y, d = columns$d, x = columns$x,
               cluster = columns$cluster, covariates = covariates %||% reticulate::py_none(),
               groups = groups, na_action = "fail")
  het <- py_call_warnings(do.call(b$rfp$heterogeneity, c(args, checked$py, progress$settings)))
  tidy_table <- function(table) {
    out <- r_table(table)
    names(out)[match(c("std_error", "ci_low", "ci_high", "p"), names(out))] <-
      c("std.error", "conf.low", "conf.high", "p.value")
    out
  }
  blp <- if (is.null(covariates)) NULL else tidy_table(het$blp)
  if (!is.null(blp)) blp$term <- c("(Intercept)", ed$x_names[match(unlist(covariates), ed$columns)])
  structure(list(blp = blp, gates = if (groups) tidy_table(het$gates) else NULL,
                 effect = backend_effect(het$effect)), class = "rfp_heterogeneity")
}

#' @export
print.rfp_heterogeneity <- function(x, digits = 3L, ...) {
  if (!is.null(x$blp)) {
    cat("Best linear projection of tau(x) (AIPW scores, CR1 by cluster):\n")
    print(x$blp, digits = digits, row.names = FALSE)
  }
  if (!is.null(x$gates)) {
    cat("\nGroup average effects by quantiles of the cross-fitted tau-hat(x):\n")
    print(x$gates, digits = digits, row.names = FALSE)
  }
  invisible(x)
}
