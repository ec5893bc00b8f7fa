# `subset =` as in lm: an expression evaluated in the data (then in the
# caller's frame) choosing the rows to use.

# The rows of `data` that `expr` (an unevaluated `subset` argument) selects:
# a logical vector with one entry per row (NA counts as FALSE, as in lm) or
# row numbers. Anything else is an error naming the expected form. The row
# numbers chosen are the attribute "rows" (to subset case weights alike).
subset_data <- function(data, expr, env) {
  if (!is.data.frame(data)) {
    stop("subset needs data as a data frame", call. = FALSE)
  }
  keep <- tryCatch(eval(expr, data, env), error = function(e) {
    stop(sprintf("subset = %s could not be evaluated in the data: %s",
                 deparse1(expr), conditionMessage(e)), call. = FALSE)
  })
  if (is.logical(keep)) {
    if (length(keep) != nrow(data)) {
      stop(sprintf("subset = %s has %d value(s) but the data have %d rows", deparse1(expr),
                   length(keep), nrow(data)), call. = FALSE)
    }
    keep <- keep & !is.na(keep)
  } else if (is.numeric(keep)) {
    if (anyNA(keep) || any(keep != round(keep)) || any(keep < 1) || any(keep > nrow(data))) {
      stop(sprintf("subset = %s must be row numbers between 1 and %d", deparse1(expr),
                   nrow(data)), call. = FALSE)
    }
  } else {
    stop(sprintf("subset = %s must be a logical vector (one value per row) or row numbers",
                 deparse1(expr)), call. = FALSE)
  }
  out <- data[keep, , drop = FALSE]
  if (!nrow(out)) stop(sprintf("subset = %s keeps no rows", deparse1(expr)), call. = FALSE)
  attr(out, "rows") <- seq_len(nrow(data))[keep]
  out
}
