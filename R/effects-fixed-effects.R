# rfp_fixed_effects(): OLS of the outcome on the treatment and the controls,
# absorbing fixed effects, with cluster-robust inference, in the style of
# estimatr::lm_robust and fixest::feols. Every number is the backend's
# (rfp.fixed_effects through facade.fixed_effects).

#' Fixed-effects regression with cluster-robust standard errors
#'
#' OLS of the outcome on the treatment and the controls of `y ~ controls |
#' cluster`, absorbing the fixed effects named in `fe` (each variable its own
#' set of dummies, by alternating projections), with standard errors
#' clustered by the formula's cluster: `vcov = "CR1"` equals
#' `estimatr::lm_robust(..., clusters = cluster, se_type = "stata")` and
#' `fixest::feols(y ~ d + x | fe, vcov = ~cluster)` (t on G - 1 df);
#' `"CR2"` is Bell-McCaffrey with Satterthwaite degrees of freedom, as
#' `lm_robust(se_type = "CR2")`; `"wild"` takes p-values and intervals
#' from the wild cluster bootstrap. The same estimator is the
#' `fixed_effects` row of [rfp_compare()] (whose `fe` makes one set of
#' strata).
#'
#' @inheritParams rfp_effect
#' @param formula `y ~ controls | cluster` (see [rfp_design()]); the
#'   controls enter linearly.
#' @param treatment Name of the treatment column (numeric or logical); its
#'   coefficient is the first row.
#' @param fe A one-sided formula (or character vector) naming fixed-effect
#'   variables, e.g. `~ stratum + year`; `NULL` fits an intercept instead.
#' @param level Confidence level of the intervals.
#' @param bootstrap_draws,bootstrap_weights,seed The wild bootstrap's draws,
#'   weights (`"rademacher"` or `"webb"`) and seed (`vcov = "wild"` only).
#' @param weights Case (sampling) weights, as in [rfp()]: weighted least
#'   squares with fixest's weighted CR1 (`vcov = "CR1"` only).
#' @param ... `tol` and `max_iter` of the alternating projections.
#' @return An object of class `rfp_fixed_effects`: `coefficients` (broom's
#'   columns `term`, `estimate`, `std.error`, `statistic`, `p.value`,
#'   `conf.low`, `conf.high`, `df`), `vcov`, `level`, `se_type`, `n`,
#'   `n_clusters`, `n_dropped`, `converged`; with `coef()`, `vcov()`,
#'   `confint()`, `nobs()`, `tidy()` and `glance()` methods.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   fe <- rfp_fixed_effects(y ~ x1 + x2 | cluster, rfp_trial, treatment = "d",
#'                           fe = ~ stratum)
#'   fe
#'   tidy(fe)
#' }
#' }
#' @export
rfp_fixed_effects <- function(formula, data, treatment, fe = NULL,
                              vcov = c("CR1", "CR2", "wild"), se_type = NULL, level = 0.95,
                              bootstrap_draws = 9999L,
                              bootstrap_weights = c("rademacher", "webb"), seed = 0L,
                              na.action = stats::na.fail, subset = NULL, weights = NULL, ...) {
  call <- match.call()
  inputs <- captured_inputs()
  data <- inputs$data
  w <- inputs$w
  if (!is.null(w$equal_clusters)) {
    stop("rfp_fixed_effects() has no equal-cluster mode: weights takes case weights (a column ",
         "name or one number per row)", call. = FALSE)
  }
  v <- vcov_setting(vcov, se_type)
  checked <- check_settings(c(list(
    level = level, vcov = v$value, bootstrap_draws = bootstrap_draws,
    bootstrap_weights = if (missing(bootstrap_weights)) "rademacher" else bootstrap_weights,
    seed = seed), list(...)), "fixed_effects", rename = v$rename)
  ed <- effect_design(formula, data, treatment, na.action, fe = fe,
                      what = "rfp_fixed_effects()")
  columns <- effect_columns(ed)
  # each fixed-effect variable its own column (effect_design's strata join them)
  fe_vars <- strata_names(fe, data)
  fe_names <- sprintf("rfp_fe_%d", seq_along(fe_vars))
  for (j in seq_along(fe_vars)) {
    reticulate::py_set_item(columns$table, fe_names[j],
                            py_column(as.character(data[[fe_vars[j]]][ed$rows])))
  }
  b <- backend()
  args <- c(list(columns$table, y = columns$y, treatment = columns$d, controls = columns$x,
                 fe = as.list(fe_names), cluster = columns$cluster, na_action = "fail"),
            checked$py)
  case_weights <- kept_case_weights(w, ed)
  if (!is.null(case_weights)) args$weights <- py_column(case_weights)
  fit <- py_call_warnings(b$facade$fixed_effects, args)

  coefficients <- r_table(reticulate::py_get_item(fit, "table"))
  terms <- coefficients$term
  # the backend's column names -> the user's (the treatment, the controls' x_names)
  terms[terms == columns$d] <- ed$treatment_name
  controls <- match(terms, ed$columns)
  terms[!is.na(controls)] <- ed$x_names[controls[!is.na(controls)]]
  k <- length(terms)
  coefficients <- data.frame(
    term = terms, estimate = coefficients$estimate, std.error = coefficients$std_error,
    statistic = coefficients$t, p.value = coefficients$p, conf.low = coefficients$ci_low,
    conf.high = coefficients$ci_high, df = r_numeric(reticulate::py_get_item(fit, "df")),
    stringsAsFactors = FALSE)
  vc <- matrix(r_numeric(reticulate::py_get_item(fit, "vcov")), k, k, byrow = TRUE,
               dimnames = list(terms, terms))
  get <- function(name) r_plain(reticulate::py_get_item(fit, name))
  structure(list(
    call = call, formula = formula, treatment = ed$treatment_name, outcome = ed$outcome,
    fe = fe_vars, cluster_name = ed$cluster_name, coefficients = coefficients, vcov = vc,
    level = as.numeric(get("level")), se_type = get("se_type"), n = as.integer(get("n")),
    n_clusters = as.integer(get("n_clusters")), n_dropped = ed$n_dropped,
    converged = isTRUE(get("converged")), iterations = as.integer(get("iterations")),
    weights = case_weights), class = "rfp_fixed_effects")
}

#' @export
print.rfp_fixed_effects <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat(sprintf("rfp fixed effects: %s%s\n", deparse1(x$formula),
              if (length(x$fe)) sprintf(", fixed effects %s", paste(x$fe, collapse = " + "))
              else ""))
  cat(sprintf("%d observations in %d clusters%s; standard errors %s, clustered by %s\n\n",
              x$n, x$n_clusters,
              if (x$n_dropped) sprintf(" (%d dropped for missing values)", x$n_dropped) else "",
              x$se_type, x$cluster_name))
  print_coef_table(x$coefficients, level = x$level, digits = digits)
  invisible(x)
}

#' @export
summary.rfp_fixed_effects <- function(object, ...) object

#' @export
tidy.rfp_fixed_effects <- function(x, ...) x$coefficients

#' @export
glance.rfp_fixed_effects <- function(x, ...) {
  data.frame(nobs = x$n, n_clusters = x$n_clusters, se_type = x$se_type, level = x$level,
             n_fe = length(x$fe), converged = x$converged, stringsAsFactors = FALSE)
}

#' @export
coef.rfp_fixed_effects <- function(object, ...) {
  stats::setNames(object$coefficients$estimate, object$coefficients$term)
}

#' @export
vcov.rfp_fixed_effects <- function(object, ...) object$vcov

#' @export
confint.rfp_fixed_effects <- function(object, parm, level = 0.95, ...) {
  rows <- object$coefficients
  intervals(coef(object), rows$std.error, rows$df, level, rows$conf.low, rows$conf.high,
            object$level, parm)
}

#' @export
nobs.rfp_fixed_effects <- function(object, ...) object$n
