# text() columns in the formula (issue 21): the same fit as Python's
# rfp.fit(text = ...), predictions, saving, and clear errors.

text_data <- function(n_clusters = 12, n_per = 8, seed = 3) {
  set.seed(seed)
  words <- c("red", "old", "dog", "sun", "harbour", "meadow", "castle", "mill")
  n <- n_clusters * n_per
  g <- rep(seq_len(n_clusters), each = n_per)
  title <- vapply(seq_len(n), function(i) paste(sample(words, sample(1:3, 1)), collapse = " "),
                  character(1))
  x1 <- rnorm(n)
  y <- grepl("red", title) - 0.8 * grepl("dog", title) + 0.3 * x1 + rnorm(n_clusters)[g] * 0.5 +
    rnorm(n, sd = 0.3)
  data.frame(y = y, title = title, medium = factor(ifelse(x1 > 0, "oil", "paper")), x1 = x1,
             g = g, stringsAsFactors = FALSE)
}

small_text_fit <- function(formula, data, ...) {
  rfp(formula, data, max_steps = 20L, patience = NULL, hidden = 4L, embedding_dim = 3L,
      progress = FALSE, ...)
}

test_that("text() in the formula equals the Python API's text =", {
  skip_if_no_backend()
  df <- text_data()
  fit <- small_text_fit(y ~ text(title) + x1 | g, df)
  py <- reticulate::import("rfp")
  pf <- py$fit(df, "y", x = list("x1"), text = "title", cluster = "g", max_steps = 20L,
               patience = NULL, hidden = list(4L), embedding_dim = 3L, progress = FALSE)
  want <- rfp:::r_numeric(pf$predict(df, as_numpy = TRUE))
  expect_equal(unname(predict(fit, newdata = df)), want, tolerance = 1e-12)
  expect_equal(unname(fitted(fit)), want, tolerance = 1e-12)
  expect_equal(fit$text$columns, "title")
  expect_output(print(summary(fit)), "Text: title; [0-9]+ words in the vocabulary")
})

test_that("text alone, two text columns (a factor among them) and new words", {
  skip_if_no_backend()
  df <- text_data()
  only <- small_text_fit(y ~ text(title) | g, df)
  expect_length(only$design$x_names, 0L)
  expect_equal(only$settings$model, "text")
  two <- small_text_fit(y ~ text(title, medium) + x1 | g, df, model = "linear")
  expect_equal(two$text$columns, c("title", "medium"))
  expect_equal(two$text$head, "linear")
  new <- data.frame(title = c("red zebra quokka", ""), medium = c("oil", "paper"), x1 = c(0, 1))
  p <- predict(two, newdata = new)
  expect_true(all(is.finite(p)))
  expect_length(p, 2L)
})

test_that("a saved text fit loads to identical predictions", {
  skip_if_no_backend()
  df <- text_data()
  fit <- small_text_fit(y ~ text(title) + x1 | g, df)
  path <- tempfile(fileext = ".rfp")
  rfp_save(fit, path)
  back <- rfp_load(path)
  expect_identical(predict(back, newdata = df), predict(fit, newdata = df))
})

test_that("missing text is named, na.omit drops it, predict gives NA", {
  skip_if_no_backend()
  df <- text_data()
  df$title[3] <- NA
  expect_error(small_text_fit(y ~ text(title) + x1 | g, df),
               "column 'title' has 1 missing value.*first at row 3")
  expect_message(small_text_fit(y ~ text(title) + x1 | g, df, na.action = na.omit),
                 "dropped 1 row")
  fit <- suppressMessages(small_text_fit(y ~ text(title) + x1 | g, df, na.action = na.omit))
  expect_equal(fit$n_obs, nrow(df) - 1L)
  p <- predict(fit, newdata = df[1:4, ])
  expect_true(is.na(p[3]) && all(is.finite(p[-3])))
})

test_that("bad text() terms are clear errors", {
  df <- text_data()
  expect_error(rfp_design(y ~ text(x1) | g, df), "text column 'x1' is numeric, not text")
  expect_error(rfp_design(y ~ text(nope) | g, df), "text column 'nope' not found")
  expect_error(rfp_design(y ~ text("title") | g, df), "text\\(\\) takes column names")
  expect_error(rfp_design(y ~ x1 * text(title) | g, df), "must be a term of its own")
  expect_error(rfp_design(y ~ text(g) | g, df), "also the cluster")
  d <- rfp_design(y ~ text(title) + x1 | g, df)
  expect_equal(d$text, "title")
  expect_equal(colnames(d$x), "x1")
  expect_error(rfp_effect(y ~ text(title) + x1 | g, transform(df, d = as.numeric(g %% 2)),
                          treatment = "d"), "text\\(\\) controls work in rfp\\(\\)")
})

test_that("rfp_nearest_words reads the fit's embedding as Python does", {
  skip_if_no_backend()
  df <- text_data()
  fit <- small_text_fit(y ~ text(title) + x1 | g, df)
  near <- rfp_nearest_words(fit, c("red", "dog"), n = 3)
  expect_equal(names(near), c("word", "neighbour", "similarity"))
  expect_equal(nrow(near), 6L)
  py <- reticulate::py_to_r(fit$backend$model$nearest_words("red", 3L))
  expect_equal(near$neighbour[1:3], vapply(py, function(p) p[[1]], ""))
  expect_equal(near$similarity[1:3], vapply(py, function(p) p[[2]], 0), tolerance = 1e-12)
  expect_error(rfp_nearest_words(fit, "zebra"), "not one word of the vocabulary")
})
