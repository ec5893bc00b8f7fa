# rfp_balance(): balancing weights (the backend's rfp.balance), their
# balance table and the weighted ATT, with a love plot.

#' Balancing weights for a binary treatment
#'
#' * `method = "entropy"`: entropy balancing (Hainmueller): control weights
#'   closest to uniform in entropy whose weighted means equal the treated
#'   means of every control column, by a dual Newton method.
#' * `method = "hierarchical"`: hierarchical balancing weights (Ben-Michael
#'   and Feller) when treatment varies within clusters: exact global balance
#'   and penalised within-cluster imbalance; `lambda` trades the two
#'   (partial pooling). Solved by OSQP.
#' * `method = "cluster"`: when treatment is assigned to whole clusters,
#'   weights on control clusters that balance the cluster means with the
#'   smallest variance under a random-intercept model with intraclass
#'   correlation `icc` (columns constant within clusters are balanced as
#'   cluster covariates, the others by their cluster means).
#'
#' The weights target the ATT: treated rows weigh 1 and the control weights
#' sum to the number of treated rows. The outcome of the formula gives the
#' weighted difference in means, \eqn{\bar y_T - \sum_C w_i y_i / \sum_C
#' w_i}, with a cluster-robust standard error from its linearisation (as in
#' [rfp_compare()]).
#'
#' @inheritParams rfp_effect
#' @param formula `y ~ controls | cluster`: the outcome, the columns to
#'   balance, and the cluster (see [rfp_design()]).
#' @param treatment Name of the binary (0/1 or logical) treatment column.
#' @param method `"entropy"`, `"hierarchical"` or `"cluster"`.
#' @param lambda `"hierarchical"`: weight of the within-cluster imbalance
#'   penalty.
#' @param icc `"cluster"`: the outcome's intraclass correlation in \[0, 1\];
#'   `NULL` estimates it (one-way ANOVA) from the control clusters'
#'   outcomes after a linear regression on the covariates (the residual ICC
#'   of the weights' random-intercept model), as [rfp_compare()] does.
#' @param weights Case (sampling) weights, as in [rfp()] (a column name, a
#'   numeric vector with one number >= 0 per row, or a bare column name);
#'   `method = "entropy"` only: the target is the weighted treated means, the
#'   controls' base weights are their case weights, and the returned weights
#'   are the case weights for treated rows and control weights summing to
#'   the treated rows' total (the ATT is then the weighted difference in
#'   means). The other methods give an error.
#' @param ... Further arguments of the backend's solver (e.g. `max_iter` for
#'   entropy balancing, `tol` for cluster balancing, `sd = "pooled"` for the
#'   SMD denominator, `fallback = "none"` to return no weights, instead of
#'   approximately balancing ones, when exact balance is infeasible).
#' @return An object of class `rfp_balance`: `weights` (one per row used,
#'   named by row), `balance` (a data frame: `covariate`, `treated_mean`,
#'   `treated_mean_weighted`, `control_mean`, `control_mean_weighted`, `sd`,
#'   `smd_before`, `smd_after`), `ess` (Kish's effective sample size of the
#'   control rows' weights; for `"cluster"` also `ess_clusters`, the
#'   effective number of control clusters), `converged`, `status`, `message`,
#'   `balance_reached` (`"exact"`, `"approximate"` or `"none"`; entropy and
#'   cluster balancing), and the ATT
#'   `estimate`, `std.error`, `conf.low`, `conf.high`.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   bal <- rfp_balance(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d")
#'   bal
#'   tidy(bal)
#' }
#' }
#' @export
rfp_balance <- function(formula, data, treatment, method = c("entropy", "hierarchical", "cluster"),
                        lambda = 1, icc = NULL, na.action = stats::na.fail, subset = NULL,
                        weights = NULL, ...) {
  call <- match.call()
  inputs <- captured_inputs()
  data <- inputs$data
  w <- inputs$w
  if (!is.null(w$equal_clusters)) {
    stop("rfp_balance() has no equal-cluster mode: weights takes case weights (a column name ",
         "or one number per row)", call. = FALSE)
  }
  method <- match.arg(method)
  if (!is.null(w$values) && method != "entropy") {
    stop(sprintf(paste0("weights (case weights) are supported by method = \"entropy\" only; ",
                        "method = \"%s\" does not take them"), method), call. = FALSE)
  }
  given <- c(list(method = method), if (method == "hierarchical") list(lam = lambda),
             if (method == "cluster" && !is.null(icc)) list(icc = icc), list(...))
  checked <- check_settings(given, paste0("balance:", method), rename = c(lam = "lambda"))
  ed <- effect_design(formula, data, treatment, na.action, binary = TRUE,
                      what = "balancing weights")
  columns <- effect_columns(ed)
  b <- backend()
  args <- c(list(columns$table, d = columns$d, x = columns$x, cluster = columns$cluster),
            checked$py)
  case_weights <- kept_case_weights(w, ed)
  if (!is.null(case_weights)) args$weights <- py_column(case_weights)
  if (method == "cluster" && is.null(icc)) {
    # the ICC of the control outcomes after their covariates (rfp.compare's default)
    control <- ed$treatment == 0
    x_control <- b$facade$column_stack(lapply(seq_len(ncol(ed$x)), function(j) {
      py_column(ed$x[control, j])
    }))
    args$icc <- b$facade$residual_icc(py_column(ed$y[control]), x_control,
                                      py_column(ed$cluster[control]))
  }
  fit <- py_call_warnings(b$facade$balance, args)

  result <- fit$result
  converged <- if (reticulate::py_has_attr(result, "converged")) result$converged else result$solved
  weights <- r_numeric(fit$weights)
  names(weights) <- rownames(ed$covariates)
  balance <- r_table(fit$balance)
  balance$covariate <- ed$x_names[match(balance$covariate, ed$columns)]
  att <- balanced_att(ed, fit)
  n_clusters <- length(unique(ed$cluster))
  structure(c(list(
    call = call, formula = formula, method = method, treatment = ed$treatment_name,
    outcome = ed$outcome, weights = weights, balance = balance,
    ess = as.numeric(r_plain(fit$ess)), converged = isTRUE(r_plain(converged)),
    status = r_plain(result$status), message = r_plain(result$message),
    balance_reached = if (reticulate::py_has_attr(result, "balance")) r_plain(result$balance) else NULL,
    lambda = if (method == "hierarchical") r_plain(args$lam) else NULL,
    icc = if (method == "cluster") r_plain(args$icc) else NULL,
    ess_clusters = if (method == "cluster") as.numeric(r_plain(result$ess)) else NULL,
    n = length(weights), n_treated = sum(ed$treatment == 1), n_clusters = n_clusters,
    n_dropped = ed$n_dropped), att), class = "rfp_balance")
}

# The weighted ATT, its linearised cluster-robust SE and its interval (t on
# G - 1 df), all from facade.weighted_att (residuals on the balanced
# covariates; NA when the weights are not all finite).
balanced_att <- function(ed, fit, level = 0.95) {
  facade <- backend()$facade
  names_used <- unlist(r_plain(fit$x_names))
  covariates <- lapply(names_used, function(name) py_column(ed$x[, match(name, ed$columns)]))
  att <- r_plain(py_call(facade$weighted_att(py_column(ed$y), py_column(ed$treatment),
                                             fit$weights, py_column(ed$cluster), covariates,
                                             level = level)))
  lapply(att[c("estimate", "std.error", "conf.low", "conf.high", "level")], as.numeric)
}

#' @export
print.rfp_balance <- function(x, digits = 3L, ...) {
  cat(sprintf("rfp balancing weights (%s) for %s: %s\n", balance_label(x), x$treatment,
              deparse1(x$formula)))
  cat(sprintf("%d rows (%d treated) in %d clusters; %s (%s)\n", x$n, x$n_treated,
              x$n_clusters, if (x$converged) "converged" else "NOT converged", x$message))
  smd <- x$balance
  cat(sprintf("max |SMD| %s before, %s after; ESS of the control rows %s%s\n",
              format(signif(max(abs(smd$smd_before)), digits)),
              format(signif(max(abs(smd$smd_after)), digits)), format(round(x$ess, 1)),
              if (is.null(x$ess_clusters)) ""
              else sprintf(" (of the control clusters %s)", format(round(x$ess_clusters, 1)))))
  if (is.finite(x$estimate)) {
    cat(sprintf("weighted ATT on %s: %s (std. error %s, 95%% CI [%s, %s])\n", x$outcome,
                format(signif(x$estimate, digits)), format(signif(x$std.error, digits)),
                format(signif(x$conf.low, digits)), format(signif(x$conf.high, digits))))
  }
  invisible(x)
}

#' Summarise, tidy and glance at balancing weights
#'
#' `summary()` prints the weighted ATT as a coefficient table (estimate,
#' standard error, t, p-value, interval; t with G - 1 degrees of freedom),
#' the solver's status and the balance table in full. `tidy()` gives the
#' ATT with broom's columns, or with `what = "balance"` the balance table;
#' `glance()` one row: rows, clusters, effective sample sizes, convergence
#' and the largest |SMD| before and after weighting.
#'
#' @param x,object An [rfp_balance()].
#' @param what `"estimate"` (the ATT) or `"balance"` (one row per
#'   covariate).
#' @param ... Unused.
#' @return `summary()`: an object of class `summary.rfp_balance`.
#'   `tidy()`: a data frame with `term` (the treatment), `estimate`,
#'   `std.error`, `statistic`, `p.value`, `conf.low`, `conf.high`, `df`,
#'   `estimand` and `method`; or the balance table (`covariate`, the treated
#'   and control means before and after weighting, `sd`, `smd_before`,
#'   `smd_after`). `glance()`: a one-row data frame.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   data(rfp_trial)
#'   bal <- rfp_balance(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d")
#'   summary(bal)
#'   tidy(bal)
#'   tidy(bal, what = "balance")
#'   glance(bal)
#' }
#' }
#' @name rfp_balance-methods
NULL

#' @rdname rfp_balance-methods
#' @export
summary.rfp_balance <- function(object, ...) {
  structure(object, class = "summary.rfp_balance")
}

#' @export
print.summary.rfp_balance <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  print.rfp_balance(x, digits = digits)
  cat(sprintf("solver status: %s%s\n", x$status,
              if (!is.null(x$lambda)) sprintf(", lambda = %s", format(x$lambda))
              else if (!is.null(x$icc)) sprintf(", icc = %s", format(signif(x$icc, digits)))
              else ""))
  if (is.finite(x$estimate)) {
    cat(sprintf("\nWeighted ATT on %s (standard error: %s, clustered, from the linearised ",
                x$outcome, variance_label(x)), "estimator):\n", sep = "")
    print_coef_table(tidy.rfp_balance(x), level = x$level %||% 0.95, digits = digits,
                     row_names = sprintf("%s (ATT)", x$treatment))
  }
  cat("\nBalance (SMD: mean difference / SD of the treated):\n")
  table <- x$balance
  rownames(table) <- table$covariate
  print(signif(as.matrix(table[setdiff(names(table), "covariate")]), digits))
  invisible(x)
}

#' @rdname rfp_balance-methods
#' @method tidy rfp_balance
#' @export
tidy.rfp_balance <- function(x, what = c("estimate", "balance"), ...) {
  what <- match.arg(what)
  if (what == "balance") return(x$balance)
  out <- coef_frame(x$treatment, x$estimate, sqrt(stored_variance(x)),
                    x$df %||% (x$n_clusters - 1L), x$conf.low, x$conf.high)
  out$estimand <- "ATT"
  out$method <- x$method
  out
}

#' @rdname rfp_balance-methods
#' @method glance rfp_balance
#' @export
glance.rfp_balance <- function(x, ...) {
  data.frame(method = x$method, nobs = x$n, n_treated = x$n_treated, n_clusters = x$n_clusters,
             ess = x$ess, ess_clusters = x$ess_clusters %||% NA_real_,
             converged = x$converged, status = as.character(x$status),
             max_abs_smd_before = max(abs(x$balance$smd_before)),
             max_abs_smd_after = max(abs(x$balance$smd_after)),
             se_type = variance_label(x), n_dropped = x$n_dropped %||% 0L,
             stringsAsFactors = FALSE)
}

balance_label <- function(x) {
  c(entropy = "entropy balancing", hierarchical = "hierarchical balancing",
    cluster = "cluster balancing")[[x$method]]
}
