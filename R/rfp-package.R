#' rfp: regularized bi-level gradient descent for clustered data
#'
#' Fit models on clustered data with a formula `y ~ controls | cluster`
#' ([rfp()]); the numerical work is done by the package's Python/JAX backend,
#' found and started on first use (see [rfp_python()], [install_rfp()]).
#' Loading the package never starts Python.
#'
#' @docType package
#' @name rfp-package
#' @aliases rfp-package
#' @keywords internal
#' @importFrom stats coef confint fitted nobs predict residuals vcov
NULL
