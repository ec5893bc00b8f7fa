# Text columns: what a text fit learnt about its words.

#' Words nearest a word in a text fit's embedding
#'
#' A fit with `text()` columns learns one vector per word of its vocabulary
#' (see the `formula` of [rfp()]). Words whose vectors point the same way
#' (cosine similarity near 1) act alike in the prediction.
#'
#' @param fit An `rfp` fit with `text()` columns (and a text model: not a
#'   tuned fit that chose the mean or the linear model).
#' @param words Words of the vocabulary (lower case, as the fit reads them).
#' @param n How many neighbours per word.
#' @return A data frame with columns `word`, `neighbour`, `similarity`.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   set.seed(1)
#'   words <- c("red", "old", "dog", "sun", "mill")
#'   df <- data.frame(g = rep(1:12, each = 10))
#'   df$title <- vapply(seq_len(120), function(i) paste(sample(words, 2), collapse = " "), "")
#'   df$y <- grepl("red", df$title) + rnorm(12)[df$g] + rnorm(120, sd = 0.3)
#'   fit <- rfp(y ~ text(title) | g, df, max_steps = 50)
#'   rfp_nearest_words(fit, "red", n = 2)
#' }
#' }
#' @export
rfp_nearest_words <- function(fit, words, n = 5L) {
  if (!inherits(fit, "rfp")) stop("fit must be an rfp fit", call. = FALSE)
  if (is.null(fit$text)) {
    stop("this fit has no text model: fit it with text() columns (a tuned fit that chose the ",
         "mean or the linear model has none)", call. = FALSE)
  }
  if (!is.character(words) || !length(words)) stop("words must be a character vector",
                                                   call. = FALSE)
  n <- as.integer(n)
  if (length(n) != 1 || is.na(n) || n < 1) stop("n must be a whole number >= 1", call. = FALSE)
  model <- backend_model(fit)
  rows <- lapply(words, function(w) {
    near <- r_plain(py_call(model$nearest_words(w, n)))
    data.frame(word = w,
               neighbour = vapply(near, function(p) as.character(p[[1]]), ""),
               similarity = vapply(near, function(p) as.numeric(p[[2]]), 0),
               stringsAsFactors = FALSE)
  })
  do.call(rbind, rows)
}
