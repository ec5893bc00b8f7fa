# rfp_compare(): every estimator on the same rows, one table (the backend's
# rfp.compare), with a readable print and a plot of the intervals.

#' Compare effect estimators on the same data
#'
#' Runs, on the same rows, the estimators applied economists already trust
#' beside the method's own, and returns one table:
#'
#' * `fixed_effects`: OLS of y on the treatment and controls with the
#'   strata in `fe` as fixed effects, CR1 standard errors by cluster (as
#'   fixest's `feols(y ~ d + x | strata, vcov = ~cluster)`), estimand
#'   `"PLM"`;
#' * `entropy_balancing` (ATT, Hainmueller weights on the controls) and
#'   `cluster_balancing` (ATT, weights on control clusters with an
#'   ICC-aware dispersion penalty; only when treatment is constant within
#'   clusters);
#' * `dml` and `aipw` (ATE and ATT): the method, see [rfp_effect()], with
#'   the fit settings in `...`;
#' * `kernel`: ATT by imputation with a Nadaraya-Watson smoother (bandwidth by
#'   leave-cluster-out cross-validation);
#' * `dml_maml`, `dml_erm`: DML with MAML (`alpha = 0`) and ERM
#'   (`alpha = 1`) nuisance fits.
#'
#' A method that cannot run on these data gives a row of `NA` with the reason
#' in `note` (e.g. the balancing, kernel and AIPW rows with a continuous
#' treatment, which only the `fixed_effects` and DML rows handle). When exact
#' balance is infeasible the balancing rows use approximate balance and say
#' so in `note`; `imbalance` is the largest remaining imbalance in SDs.
#' The `fixed_effects` row's estimand is `"OLS"`: the coefficient of a
#' regression with linear controls, a regression-weighted average of effects.
#' Intervals use t with G - 1 degrees of freedom.
#'
#' @param nuisance,trim As in [rfp_effect()] (for the `dml` and `aipw` rows;
#'   `dml_maml` and `dml_erm` always use the method's model).
#'
#' @inheritParams rfp_effect
#' @param treatment Name of the treatment column: binary (0/1 or logical) for
#'   every row, or numeric (then only the `fixed_effects` and DML rows run).
#' @param fe A one-sided formula naming the strata, e.g. `~ stratum` (the
#'   fixed effects of the `fixed_effects` row; several variables are
#'   combined), or `NULL`.
#' @param methods Which estimators (names above); `NULL` for all.
#' @param truth Known true effects, a named numeric vector such as
#'   `c(ATE = 1, ATT = 1.1, PLM = 1)` (e.g. `attr(data, "truth")` for
#'   simulated data): adds columns `truth` and `error` (estimate - truth),
#'   matched by estimand.
#' @param ... Settings of the method's nuisance fits, as in [rfp()]
#'   (`model`, `hidden`, `alpha`, `max_steps`, ...), and `level`, `clip`,
#'   `icc` (cluster balancing's intraclass correlation; default: estimated
#'   from the control clusters' outcomes), `warn_share`, `propensity` (where
#'   AIPW fits the propensity, see [rfp_effect()]).
#' @return An object of class `rfp_compare`: a data frame with one row per
#'   method and estimand and columns `method`, `estimand`, `estimate`,
#'   `std.error`, `conf.low`, `conf.high`, `n`, `clusters`, `ess`
#'   (effective sample size of the weights), `converged`, `variance_share`,
#'   `imbalance` (balancing rows: largest remaining imbalance, SDs),
#'   `truth` and `error` (when `truth` is given), `note`.
#' @examples
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   cmp <- rfp_compare(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
#'                      fe = ~ stratum, methods = c("fixed_effects", "entropy_balancing"),
#'                      truth = attr(rfp_trial, "truth"))
#'   cmp
#' }
#' @export
rfp_compare <- function(formula, data, treatment, fe = NULL, methods = NULL, truth = NULL,
                        folds = 5L, seed = 0L, repeats = NULL, na.action = stats::na.fail,
                        verbose = FALSE, nuisance = c("select", "method", "linear", "constant"),
                        trim = NULL, ...) {
  call <- match.call()
  folds <- check_whole(folds, "folds", 2)
  seed <- check_whole(seed, "seed", 0)
  nuisance <- match.arg(nuisance)
  if (!is.null(repeats)) repeats <- check_whole(repeats, "repeats", 1)
  if (!is.null(trim) && !identical(trim, "crump")) trim <- check_number(trim, "trim", 0, 0.5)
  b <- backend()
  module <- reticulate::import("rfp.compare", convert = FALSE)
  known <- unlist(r_plain(module$METHODS))
  if (is.null(methods)) methods <- known
  if (!is.character(methods) || !length(methods) || anyNA(methods)) {
    stop("methods must be NULL or names of estimators: ", paste(known, collapse = ", "),
         call. = FALSE)
  }
  unknown <- setdiff(methods, known)
  if (length(unknown)) {
    stop(sprintf("unknown method(s) %s; known: %s", paste0("'", unknown, "'", collapse = ", "),
                 paste(known, collapse = ", ")), call. = FALSE)
  }
  settings <- backend_settings(list(...), c("level", "clip", "icc", "warn_share", "propensity"))
  ed <- effect_design(formula, data, treatment, na.action, fe = fe, what = "rfp_compare()")
  columns <- effect_columns(ed)
  repeats <- repeats %||% default_repeats(ed$cluster)

  individual_e <- individual_propensity(ed, settings$propensity)
  progress <- fits_progress(folds * repeats * compare_nuisances(methods, individual_e), verbose)
  on.exit(progress$close(), add = TRUE)
  args <- list(columns$table, y = columns$y, d = columns$d, x = columns$x,
               cluster = columns$cluster, strata = columns$strata %||% reticulate::py_none(),
               methods = as.list(methods), truth = py_truth(truth), folds = folds, seed = seed,
               repeats = repeats, na_action = "fail", nuisance = nuisance,
               trim = trim %||% reticulate::py_none())
  table <- py_call_warnings(do.call(b$rfp$compare, c(args, settings, progress$settings)))

  out <- r_table(table)
  names(out)[match(c("std_error", "ci_low", "ci_high"), names(out))] <-
    c("std.error", "conf.low", "conf.high")
  structure(out, class = c("rfp_compare", "data.frame"), call = call, formula = formula,
            treatment = ed$treatment_name, outcome = ed$outcome,
            strata = ed$strata_name, level = settings$level %||% 0.95, folds = folds,
            seed = seed, repeats = repeats, n_dropped = ed$n_dropped)
}

# How many nuisance fits per fold the methods make: the method's own share one
# set of cross-fits (AIPW: the two arms, E[D|X] when the propensity is fitted
# on individual rows or DML needs it; DML: E[Y|X] and E[D|X]); MAML and ERM
# each fit E[Y|X] and E[D|X].
compare_nuisances <- function(methods, individual_e) {
  dml <- "dml" %in% methods
  own <- if ("aipw" %in% methods) 2 + (dml || individual_e) + dml else 2 * dml
  own + 2 * sum(c("dml_maml", "dml_erm") %in% methods)
}

py_truth <- function(truth) {
  if (is.null(truth)) return(reticulate::py_none())
  truth <- unlist(truth)
  if (!is.numeric(truth) || is.null(names(truth)) || any(!nzchar(names(truth)))) {
    stop("truth must be a named numeric vector, e.g. c(ATE = 1, ATT = 1.1)", call. = FALSE)
  }
  reticulate::py_dict(names(truth), as.list(unname(as.numeric(truth))), convert = FALSE)
}

#' @export
print.rfp_compare <- function(x, digits = 3L, ...) {
  shown_columns <- c("method", "estimand", "estimate", "std.error", "conf.low", "conf.high",
                     "n", "clusters", "ess", "converged", "variance_share", "note")
  if (!all(shown_columns %in% names(x))) return(NextMethod())  # a subset of the columns
  formula <- attr(x, "formula")
  cat(sprintf("rfp comparison: effect of %s on %s%s\n", attr(x, "treatment") %||% "treatment",
              attr(x, "outcome") %||% "outcome",
              if (is.null(formula)) "" else paste0(", ", deparse1(formula))))
  if (nrow(x)) {
    cat(sprintf("%d observations in %d clusters%s; %g%% intervals (t, G - 1 df)\n\n",
                x$n[1], x$clusters[1],
                if (!is.null(attr(x, "strata"))) paste0(", strata: ", attr(x, "strata")) else "",
                100 * (attr(x, "level") %||% 0.95)))
  }
  fixed <- function(v, digits) {
    v[is.finite(v) & abs(v) < 0.5 * 10^-digits] <- 0  # no "-0.00"
    formatC(v, digits = digits, format = "f")
  }
  num <- function(v) ifelse(is.finite(v), fixed(v, digits), "NA")
  shown <- data.frame(method = x$method, estimand = x$estimand, estimate = num(x$estimate),
                      std.error = num(x$std.error),
                      interval = ifelse(is.finite(x$conf.low),
                                        sprintf("[%s, %s]", num(x$conf.low), num(x$conf.high)),
                                        ""),
                      ess = ifelse(is.finite(x$ess), fixed(x$ess, 0), ""),
                      converged = ifelse(x$converged, "yes", "NO"),
                      var.share = ifelse(is.finite(x$variance_share),
                                         fixed(x$variance_share, 2), ""),
                      stringsAsFactors = FALSE)
  if (!is.null(x$truth)) {
    shown$truth <- num(x$truth)
    shown$error <- num(x$error)
  }
  notes <- which(nzchar(x$note))
  shown$note <- ""
  shown$note[notes] <- sprintf("[%d]", seq_along(notes))
  print(shown, row.names = FALSE, right = TRUE)
  for (k in seq_along(notes)) cat(sprintf("[%d] %s: %s\n", k, x$method[notes[k]],
                                          x$note[notes[k]]))
  invisible(x)
}

#' Tidy a comparison
#'
#' @param x An [rfp_compare()] table.
#' @param ... Unused.
#' @return The table as a plain data frame.
#' @method tidy rfp_compare
#' @export
tidy.rfp_compare <- function(x, ...) {
  out <- x
  attributes(out) <- attributes(out)[c("names", "row.names")]
  class(out) <- "data.frame"
  out
}

#' Plot a comparison
#'
#' Each estimate with its confidence interval, one row per method and
#' estimand; the truth, when known, as a dashed mark on each row.
#'
#' @param x An [rfp_compare()] table.
#' @param main Title.
#' @param ... Further arguments to [graphics::plot()].
#' @return `x`, invisibly.
#' @export
plot.rfp_compare <- function(x, main = NULL, ...) {
  labels <- sprintf("%s (%s)", x$method, ifelse(nzchar(x$estimand), x$estimand, "-"))
  if (is.null(main)) main <- sprintf("Effect of %s on %s", attr(x, "treatment"),
                                     attr(x, "outcome"))
  plot_intervals(x$estimate, x$conf.low, x$conf.high, labels = labels, truth = x$truth,
                 xlab = sprintf("estimate with %g%% interval%s", 100 * (attr(x, "level") %||% 0.95),
                                if (!is.null(x$truth)) "; dashed: truth" else ""),
                 main = main, ...)
  invisible(x)
}
