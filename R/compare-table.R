# rfp_compare(): every estimator on the same rows, one table (the backend's
# rfp.compare), with a readable print and a plot of the intervals.

#' Compare effect estimators on the same data
#'
#' Runs, on the same rows, the estimators applied economists already trust
#' beside the method's own, and returns one table:
#'
#' * `fixed_effects`: OLS of y on the treatment and controls with the
#'   strata in `fe` as fixed effects, standard errors by cluster (`vcov`:
#'   CR1 as fixest's `feols(y ~ d + x | strata, vcov = ~cluster)`, CR2 as
#'   `clubSandwich` / `estimatr::lm_robust(se_type = "CR2")`, or the wild
#'   cluster bootstrap), estimand `"OLS"`;
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
#' Intervals use t with G - 1 degrees of freedom (CR1), except
#' on the fixed-effects row with `vcov = "CR2"` (t with Satterthwaite degrees
#' of freedom) or `"wild"` (bootstrap p-value and interval around the CR1
#' standard error). With `vcov = "CR1"` and fewer than 30 clusters a warning
#' (class `rfp_small_cluster_warning`) recommends CR2 or the bootstrap.
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
#' @param weights Case (sampling) weights, as in [rfp()] (a column name, a
#'   numeric vector with one number >= 0 per row, or a bare column name),
#'   used by the `fixed_effects` row (weighted least squares with fixest's
#'   weighted CR1, equal to `fixest::feols(..., weights = ~w)`; `vcov =
#'   "CR1"` only; rows of weight 0 are dropped, as fixest does),
#'   `entropy_balancing`, `dml`, `aipw`, `dml_maml` and `dml_erm` (as in
#'   [rfp_balance()] and [rfp_effect()]); `cluster_balancing` and `kernel`
#'   take none and say so in `note`.
#' @param truth Known true effects, a named numeric vector such as
#'   `c(ATE = 1, ATT = 1.1, PLM = 1)` (e.g. `attr(data, "truth")` for
#'   simulated data): adds columns `truth` and `error` (estimate - truth),
#'   matched by estimand.
#' @param vcov,se_type Variance of the `fixed_effects` row (`se_type` is
#'   estimatr's name for the same setting): `"CR1"` (default; t on G - 1),
#'   `"CR2"` (Bell-McCaffrey bias-reduced, t with Satterthwaite degrees of
#'   freedom; equal to `clubSandwich::coef_test(vcov = "CR2", test =
#'   "Satterthwaite")` on the regression with the strata as dummies) or
#'   `"wild"` (wild cluster bootstrap with the null imposed: p-value and
#'   interval by test inversion, seeded by `seed`). The other rows always use
#'   CR1-type variances (see [rfp_effect()] for why).
#' @param bootstrap_draws,bootstrap_weights The wild bootstrap's number of
#'   draws and weights (`"rademacher"`, all 2^G sign vectors when that is at
#'   most `bootstrap_draws`, or `"webb"`, better with under about 12
#'   clusters).
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
#'   `p.value` (two-sided, estimate = 0), `df` (of the t) and `se_type` (the
#'   row's variance), `truth` and `error` (when `truth` is given), `note`.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   cmp <- rfp_compare(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
#'                      fe = ~ stratum, methods = c("fixed_effects", "entropy_balancing"),
#'                      truth = attr(rfp_trial, "truth"))
#'   cmp
#' }
#' }
#' @export
rfp_compare <- function(formula, data, treatment, fe = NULL, methods = NULL, truth = NULL,
                        folds = 5L, seed = 0L, repeats = NULL, na.action = stats::na.fail,
                        progress = NULL, nuisance = c("select", "method", "linear", "constant"),
                        trim = NULL, vcov = c("CR1", "CR2", "wild"), se_type = NULL,
                        bootstrap_draws = 9999L, bootstrap_weights = c("rademacher", "webb"),
                        subset = NULL, weights = NULL, ...) {
  call <- match.call()
  inputs <- captured_inputs()
  data <- inputs$data
  w <- inputs$w
  dots <- list(...)
  progress <- progress_setting(progress, dots)
  dots$verbose <- NULL
  dots <- dots_with_equal_clusters(dots, w)
  # the backend's validator checks every setting (R and Python say the same)
  v <- vcov_setting(vcov, se_type)
  checked <- check_settings(c(list(
    folds = folds, seed = seed, repeats = repeats, vcov = v$value,
    bootstrap_draws = bootstrap_draws,
    bootstrap_weights = if (missing(bootstrap_weights)) "rademacher" else bootstrap_weights,
    nuisance = if (missing(nuisance)) "select" else nuisance, trim = trim),
    dots), "compare", rename = v$rename)
  settings <- checked$r
  folds <- settings$folds
  seed <- settings$seed
  repeats <- settings$repeats
  vcov <- settings$vcov
  b <- backend()
  known <- unlist(r_plain(b$facade$compare_methods()))
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
  ed <- effect_design(formula, data, treatment, na.action, fe = fe, what = "rfp_compare()")
  columns <- effect_columns(ed)
  repeats <- repeats %||% default_repeats(ed$cluster)

  individual_e <- individual_propensity(ed, settings$propensity)
  n_fits <- folds * repeats * compare_nuisances(methods, individual_e)
  progress <- fits_progress(n_fits, progress)
  on.exit(progress$close(), add = TRUE)
  args <- list(columns$table, y = columns$y, d = columns$d, x = columns$x,
               cluster = columns$cluster, strata = columns$strata %||% reticulate::py_none(),
               methods = as.list(methods), truth = py_truth(truth), na_action = "fail")
  checked$py$repeats <- repeats   # the count the progress bar used
  case_weights <- kept_case_weights(w, ed)
  if (!is.null(case_weights)) checked$py$weights <- py_column(case_weights)
  table <- py_call_warnings(b$facade$compare, c(args, checked$py, progress$settings))

  out <- r_table(table)
  names(out)[match(c("std_error", "ci_low", "ci_high", "p_value"), names(out))] <-
    c("std.error", "conf.low", "conf.high", "p.value")
  structure(out, class = c("rfp_compare", "data.frame"), call = call, formula = formula,
            treatment = ed$treatment_name, outcome = ed$outcome,
            strata = ed$strata_name, level = settings$level %||% 0.95, folds = folds,
            seed = seed, repeats = repeats, n_dropped = ed$n_dropped, se_type = vcov)
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
    inference <- switch(attr(x, "se_type") %||% "CR1",
                        CR2 = "; fixed effects: CR2, t with Satterthwaite df",
                        wild = "; fixed effects: wild cluster bootstrap", "")
    cat(sprintf("%d observations in %d clusters%s; %g%% intervals (t, G - 1 df%s)\n\n",
                x$n[1], x$clusters[1],
                if (!is.null(attr(x, "strata"))) paste0(", strata: ", attr(x, "strata")) else "",
                100 * (attr(x, "level") %||% 0.95), inference))
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

#' Summarise, tidy and glance at a comparison
#'
#' `summary()` prints one coefficient table (estimate, standard error, t,
#' p-value, interval, degrees of freedom G - 1) with a row per method and
#' estimand, then the diagnostics (effective sample size, convergence,
#' variance share) and the notes. `tidy()` gives broom's columns, one row
#' per method and estimand (`term` is `method:estimand`), so the table works
#' with modelsummary-style tooling; `glance()` one row about the data and
#' the settings.
#'
#' @param x,object An [rfp_compare()] table.
#' @param ... Unused.
#' @return `summary()`: an object of class `summary.rfp_compare`.
#'   `tidy()`: a data frame with `term`, `estimate`, `std.error`,
#'   `statistic`, `p.value`, `conf.low`, `conf.high`, `df`, then the
#'   comparison's own columns (`method`, `estimand`, `n`, `clusters`, `ess`,
#'   `converged`, `variance_share`, `truth`, `error`, `note`). `glance()`:
#'   a one-row data frame (`nobs`, `n_clusters`, `n_methods`, `treatment`,
#'   `outcome`, `strata`, `level`, `folds`, `repeats`, `seed`, `se_type`).
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   cmp <- rfp_compare(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
#'                      fe = ~ stratum, methods = c("fixed_effects", "entropy_balancing"))
#'   summary(cmp)
#'   tidy(cmp)
#'   glance(cmp)
#' }
#' }
#' @name rfp_compare-methods
NULL

#' @rdname rfp_compare-methods
#' @method tidy rfp_compare
#' @export
tidy.rfp_compare <- function(x, ...) {
  plain <- x
  attributes(plain) <- attributes(plain)[c("names", "row.names")]
  class(plain) <- "data.frame"
  if (!all(c("method", "estimand", "estimate", "std.error") %in% names(plain))) return(plain)
  out <- coef_frame(compare_terms(plain), plain$estimate, plain$std.error, compare_df(plain),
                    plain$conf.low, plain$conf.high)
  # the table's own p-value where it has one (the wild bootstrap's is not a t's)
  if (!is.null(plain$p.value)) out$p.value <- plain$p.value
  cbind(out, plain[setdiff(names(plain), names(out))])
}

#' @rdname rfp_compare-methods
#' @method glance rfp_compare
#' @export
glance.rfp_compare <- function(x, ...) {
  data.frame(nobs = nobs(x), n_clusters = if (nrow(x)) max(x$clusters) else NA_integer_,
             n_methods = length(unique(x$method)),
             treatment = attr(x, "treatment") %||% NA_character_,
             outcome = attr(x, "outcome") %||% NA_character_,
             strata = attr(x, "strata") %||% NA_character_,
             level = attr(x, "level") %||% 0.95, folds = attr(x, "folds") %||% NA_integer_,
             repeats = attr(x, "repeats") %||% NA_integer_,
             seed = attr(x, "seed") %||% NA_integer_, se_type = compare_variance(x),
             n_dropped = attr(x, "n_dropped") %||% 0L, stringsAsFactors = FALSE)
}

#' @rdname rfp_compare-methods
#' @export
summary.rfp_compare <- function(object, ...) {
  structure(list(call = attr(object, "call"), coefficients = tidy(object),
                 treatment = attr(object, "treatment"), outcome = attr(object, "outcome"),
                 strata = attr(object, "strata"), level = attr(object, "level") %||% 0.95,
                 se_type = compare_variance(object), folds = attr(object, "folds"),
                 repeats = attr(object, "repeats"), seed = attr(object, "seed")),
            class = "summary.rfp_compare")
}

# The variances of a comparison's rows: the one type they share, or e.g.
# "CR1; fixed_effects: CR2" when the fixed-effects row uses another (`vcov`).
compare_variance <- function(x) {
  types <- x$se_type
  if (is.null(types) || !length(types)) return(attr(x, "se_type") %||% "CR1")
  kinds <- unique(types[!is.na(types)])
  if (length(kinds) <= 1) return(if (length(kinds)) kinds else "CR1")
  others <- !is.na(types) & types != "CR1"
  paste0("CR1; ", paste(sprintf("%s: %s", x$method[others], types[others]), collapse = ", "))
}

#' @export
print.summary.rfp_compare <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  table <- x$coefficients
  cat(sprintf("rfp comparison: effect of %s on %s\n\nCall: ", x$treatment %||% "treatment",
              x$outcome %||% "outcome"))
  print(x$call)
  if (nrow(table)) {
    cat(sprintf("\n%d observations in %d clusters%s; cross-fitting in %s folds, %s repeat(s), seed %s\n",
                max(table$n), max(table$clusters),
                if (!is.null(x$strata)) paste0(", strata: ", x$strata) else "",
                format(x$folds %||% NA), format(x$repeats %||% NA), format(x$seed %||% NA)))
  }
  cat(sprintf("Standard errors: %s, clustered\n\n", x$se_type))
  print_coef_table(table, level = x$level, digits = digits)
  cat("\nDiagnostics:\n")
  diagnostics <- data.frame(
    ess = ifelse(is.finite(table$ess), format(round(table$ess, 1)), "-"),
    converged = ifelse(table$converged, "yes", "NO"),
    variance_share = signif_text(table$variance_share, digits),
    check.names = FALSE, row.names = make.unique(table$term))
  if (!is.null(table$truth)) {
    diagnostics$truth <- signif_text(table$truth, digits)
    diagnostics$error <- signif_text(table$error, digits)
  }
  print(diagnostics, right = TRUE)
  notes <- which(nzchar(table$note) & !is.na(table$note))
  for (k in notes) cat(sprintf("note, %s: %s\n", table$term[k], table$note[k]))
  invisible(x)
}
