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
  data <- captured_inputs()$data
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
  het <- py_call_warnings(b$facade$heterogeneity, c(args, checked$py, progress$settings))
  tidy_table <- function(table) {
    out <- r_table(table)
    names(out)[match(c("std_error", "ci_low", "ci_high", "p"), names(out))] <-
      c("std.error", "conf.low", "conf.high", "p.value")
    out
  }
  blp <- if (is.null(covariates)) NULL else tidy_table(het$blp)
  if (!is.null(blp)) blp$term <- c("(Intercept)", ed$x_names[match(unlist(covariates), ed$columns)])
  structure(list(blp = blp, gates = if (groups) tidy_table(het$gates) else NULL,
                 effect = backend_effect(het$effect), level = settings$level %||% 0.95),
            class = "rfp_heterogeneity")
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

# ---- accessors: the BLP's and the GATES's rows as coefficients -------------
# Every number is the backend's (rfp.heterogeneity: estimates, CR1 standard
# errors, intervals and p-values, t with G - 1 df); the terms are
# "blp:<term>" and "gates:<group>". vcov() is diagonal with NA off the
# diagonal (the backend returns no covariances), as for rfp_compare.

# The rows of both tables with broom's columns and `part` ("blp", "gates").
heterogeneity_rows <- function(x) {
  one <- function(table, part, term) {
    if (is.null(table) || !nrow(table)) return(NULL)
    data.frame(term = paste0(part, ":", term), estimate = table$estimate,
               std.error = table$std.error, conf.low = table$conf.low,
               conf.high = table$conf.high, p.value = table$p.value,
               df = x$effect$n_clusters - 1L, part = part, stringsAsFactors = FALSE)
  }
  out <- rbind(one(x$blp, "blp", x$blp$term), one(x$gates, "gates", x$gates$group))
  if (is.null(out)) {
    stop("this rfp_heterogeneity result has neither a BLP (covariates) nor GATES (groups)",
         call. = FALSE)
  }
  rownames(out) <- NULL
  out
}

#' @rdname rfp-accessors
#' @export
coef.rfp_heterogeneity <- function(object, ...) {
  rows <- heterogeneity_rows(object)
  stats::setNames(rows$estimate, rows$term)
}

#' @rdname rfp-accessors
#' @export
vcov.rfp_heterogeneity <- function(object, ...) {
  rows <- heterogeneity_rows(object)
  v <- matrix(NA_real_, nrow(rows), nrow(rows), dimnames = list(rows$term, rows$term))
  diag(v) <- rows$std.error^2
  v
}

#' @rdname rfp-accessors
#' @export
confint.rfp_heterogeneity <- function(object, parm, level = 0.95, ...) {
  rows <- heterogeneity_rows(object)
  intervals(stats::setNames(rows$estimate, rows$term), rows$std.error, rows$df, level,
            rows$conf.low, rows$conf.high, object$level %||% 0.95, parm)
}

#' @rdname rfp-accessors
#' @export
nobs.rfp_heterogeneity <- function(object, ...) object$effect$n

#' @export
tidy.rfp_heterogeneity <- function(x, ...) heterogeneity_rows(x)

#' @export
glance.rfp_heterogeneity <- function(x, ...) {
  data.frame(nobs = x$effect$n, n_clusters = x$effect$n_clusters,
             ate = x$effect$estimate, ate.std.error = x$effect$std.error,
             n_covariates = if (is.null(x$blp)) 0L else nrow(x$blp) - 1L,
             groups = if (is.null(x$gates)) 0L else nrow(x$gates) - 1L,
             level = x$level %||% 0.95, stringsAsFactors = FALSE)
}

#' @export
summary.rfp_heterogeneity <- function(object, ...) {
  structure(list(coefficients = heterogeneity_rows(object), effect = object$effect,
                 level = object$level %||% 0.95), class = "summary.rfp_heterogeneity")
}

#' @export
print.summary.rfp_heterogeneity <- function(x, digits = max(3L, getOption("digits") - 3L),
                                            ...) {
  cat(sprintf("Heterogeneity of the AIPW effect (ATE %s, SE %s; %d observations in %d clusters)\n",
              signif_text(x$effect$estimate, digits), signif_text(x$effect$std.error, digits),
              x$effect$n, x$effect$n_clusters))
  rows <- x$coefficients
  table <- data.frame(Estimate = signif_text(rows$estimate, digits),
                      `Std. Error` = signif_text(rows$std.error, digits),
                      `Pr(>|t|)` = ifelse(is.finite(rows$p.value),
                                          format.pval(rows$p.value, digits = digits), "-"),
                      `CI Lower` = signif_text(rows$conf.low, digits),
                      `CI Upper` = signif_text(rows$conf.high, digits),
                      check.names = FALSE, stringsAsFactors = FALSE)
  rownames(table) <- rows$term
  cat(sprintf("\n%g%% intervals (CR1 by cluster, t with G - 1 df); blp: best linear projection",
              100 * x$level), "of tau(x), gates: group average effects\n")
  print(table, right = TRUE)
  invisible(x)
}

#' @rdname rfp-plots
#' @export
autoplot.rfp_heterogeneity <- function(object, ...) {
  rows <- heterogeneity_rows(object)
  frame <- data.frame(label = rows$term, estimate = rows$estimate, conf.low = rows$conf.low,
                      conf.high = rows$conf.high, estimand = rows$part,
                      stringsAsFactors = FALSE)
  interval_plot(frame, truth = NULL, level = object$level %||% 0.95,
                title = "Heterogeneity of the effect: BLP and GATES")
}

#' @rdname rfp-plots
#' @export
plot.rfp_heterogeneity <- function(x, ..., main = NULL) draw(autoplot(x, ...), main)
