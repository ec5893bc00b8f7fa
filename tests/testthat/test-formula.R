# The formula layer is pure R: none of these tests starts Python.

test_that("controls and cluster are parsed as in lm", {
  df <- clustered_data()
  d <- rfp_design(y ~ x1 + x2 | g, df)
  expect_s3_class(d, "rfp_design")
  expect_equal(unname(d$x), unname(as.matrix(df[c("x1", "x2")])))
  expect_identical(d$y, df$y)
  expect_identical(d$cluster, df$g)
  expect_identical(d$outcome, "y")
  expect_identical(d$cluster_name, "g")
  expect_identical(d$columns, c("x1", "x2"))
  expect_null(d$na_action)
})

test_that("factors, interactions, I() and `.` give lm's design without the intercept", {
  df <- clustered_data()
  for (f in list(y ~ x1 + f, y ~ x1 * f + I(x2^2), y ~ poly(x1, 2) + f:x2, y ~ log(abs(x2)))) {
    expected <- model.matrix(lm(f, df))[, -1, drop = FALSE]
    d <- rfp_design(as.formula(paste(deparse(f), "| g")), df)
    expect_equal(d$x, expected, ignore_attr = TRUE)
    expect_identical(colnames(d$x), colnames(expected))
    expect_identical(d$x_names, colnames(expected))
  }
  d <- rfp_design(y ~ . | g, df)
  expected <- model.matrix(lm(y ~ ., df[c("y", "x1", "x2", "f")]))[, -1]
  expect_equal(d$x, expected, ignore_attr = TRUE)
  expect_identical(colnames(d$x), c("x1", "x2", "fv", "fw"))
})

test_that("backend column names are syntactic, unique and mapped to model.matrix names", {
  df <- clustered_data()
  d <- rfp_design(y ~ x1 * f + I(x2^2) | g, df)
  expect_identical(d$columns, make.names(d$columns))
  expect_false(anyDuplicated(c(d$columns, "rfp_outcome", "rfp_cluster")) > 0)
  expect_identical(d$x_names, c("x1", "fv", "fw", "I(x2^2)", "x1:fv", "x1:fw"))
  expect_identical(d$columns, c("x1", "fv", "fw", "I.x2.2.", "x1.fv", "x1.fw"))
  df$rfp_outcome <- df$x2
  d <- rfp_design(y ~ rfp_outcome | g, df)
  expect_false(d$columns %in% c("rfp_outcome", "rfp_cluster"))
})

test_that("removing the intercept still codes factors against their first level", {
  df <- clustered_data()
  expect_identical(rfp_design(y ~ 0 + f + x1 | g, df)$x_names, c("fv", "fw", "x1"))
})

test_that("the cluster may be a factor, character, integer or an expression", {
  df <- clustered_data()
  df$gf <- factor(df$g)
  df$gi <- as.integer(factor(df$g))
  df$h <- rep(1:2, length.out = nrow(df))
  expect_identical(rfp_design(y ~ x1 | gf, df)$cluster, df$gf)
  expect_identical(rfp_design(y ~ x1 | g, df)$cluster, df$g)
  expect_identical(rfp_design(y ~ x1 | gi, df)$cluster, df$gi)
  d <- rfp_design(y ~ x1 | interaction(g, h), df)
  expect_identical(d$cluster_name, "interaction(g, h)")
  expect_length(unique(d$cluster), 12)
  # `.` never includes the cluster
  expect_false("gi" %in% rfp_design(y ~ . | gi, df[c("y", "x1", "gi")])$x_names)
})

test_that("bad formulas are errors that say what to do", {
  df <- clustered_data()
  expect_error(rfp_design(y ~ x1 + x2, df), "no cluster: add `| cluster`", fixed = TRUE)
  expect_error(rfp_design(~ x1 | g, df), "no outcome")
  expect_error(rfp_design(y ~ x1 | g | f, df), "two: controls | cluster", fixed = TRUE)
  expect_error(rfp_design(y ~ x1 | g + f, df), "must be one variable")
  expect_error(rfp_design(y ~ x1 | school, df), "'school' not found")
  expect_error(rfp_design(y ~ x1 + g | g, df), "also a control")
  expect_error(rfp_design(y ~ 1 | g, df), "no controls")
  expect_error(rfp_design("y ~ x1 | g", df), "must be a formula")
  expect_error(rfp_design(y ~ x1 | g, df, na.action = na.pass), "na.action must be")
  expect_error(rfp_design(f ~ x1 | g, df), "factor with 3 levels")
})

test_that("missing values: an error names each column and count; na.omit drops rows", {
  df <- clustered_data()
  df$x1[c(3, 7)] <- NA
  df$x2[9] <- Inf
  df$g[20] <- NA
  expect_error(rfp_design(y ~ x1 + x2 | g, df),
               "column 'x1' has 2 missing value(s) (NA, NaN or Inf), first at row 3", fixed = TRUE)
  err <- tryCatch(rfp_design(y ~ x1 + x2 | g, df), error = conditionMessage)
  expect_match(err, "column 'x2' has 1 missing", fixed = TRUE)
  expect_match(err, "column 'g' has 1 missing", fixed = TRUE)
  expect_match(err, "na.action = na.omit", fixed = TRUE)

  expect_message(d <- rfp_design(y ~ x1 + x2 | g, df, na.action = na.omit),
                 "dropped 4 row(s) with missing values (x1: 2, x2: 1, g: 1)", fixed = TRUE)
  expect_identical(nrow(d$x), nrow(df) - 4L)
  expect_identical(as.vector(d$na_action), c(3L, 7L, 9L, 20L))
  expect_s3_class(d$na_action, "omit")
  expect_identical(d$y, df$y[-c(3, 7, 9, 20)])
  expect_identical(d$cluster, df$g[-c(3, 7, 9, 20)])
  expect_s3_class(suppressMessages(rfp_design(y ~ x1 | g, df, na.action = "exclude"))$na_action,
                  "exclude")
})

test_that("factor levels left empty by dropped rows disappear from the design", {
  df <- clustered_data()
  df$f <- factor(df$f, levels = c("u", "v", "w", "z"))
  df$f[1] <- "z"
  df$x1[1] <- NA
  d <- suppressMessages(rfp_design(y ~ x1 + f | g, df, na.action = na.omit))
  expect_identical(d$x_names, c("x1", "fv", "fw"))
})

test_that("new data get the training design: levels, contrasts, predvars", {
  df <- clustered_data()
  d <- rfp_design(y ~ poly(x1, 2) + f + scale(x2) | g, df)
  full <- rfp_design_matrix(d, df)
  expect_equal(unclass(full)[, , drop = FALSE], d$x, ignore_attr = TRUE)
  # a few rows, with only one level of f present: same columns, same values
  some <- df[df$f == "v", ][1:3, ]
  x <- rfp_design_matrix(d, some[c("x1", "x2", "f")])
  expect_identical(colnames(x), d$x_names)
  expect_equal(x[, , drop = FALSE], d$x[rownames(some), ], ignore_attr = TRUE)
  # a character control in training and a factor in new data
  df$fc <- as.character(df$f)
  dc <- rfp_design(y ~ x1 + fc | g, df)
  expect_equal(rfp_design_matrix(dc, data.frame(x1 = 1, fc = factor("w")))[1, ],
               c(x1 = 1, fcv = 0, fcw = 1))
})

test_that("new data: missing rows, missing columns and new levels", {
  df <- clustered_data()
  d <- rfp_design(y ~ x1 + f | g, df)
  nd <- data.frame(x1 = c(1, NA, 2), f = c("u", "v", NA))
  x <- rfp_design_matrix(d, nd)
  expect_identical(attr(x, "complete"), c(TRUE, FALSE, FALSE))
  expect_equal(x[1, ], c(x1 = 1, fv = 0, fw = 0))
  expect_error(rfp_design_matrix(d, data.frame(x1 = 1)), "lacks the column(s) 'f'", fixed = TRUE)
  expect_error(rfp_design_matrix(d, data.frame(x1 = 1, f = "zz")), "new level")
})

test_that("a logical or two-level factor outcome is coded 0/1", {
  df <- clustered_data()
  df$b <- df$y > median(df$y)
  expect_identical(rfp_design(b ~ x1 | g, df)$y, as.numeric(df$b))
  df$bf <- factor(ifelse(df$b, "yes", "no"))
  expect_identical(rfp_design(bf ~ x1 | g, df)$y, as.numeric(df$b))
})

test_that("| with few levels warns that it is a cluster, not a fixed effect", {
  withr_few <- options(rfp.few_clusters = 10L)
  on.exit(options(withr_few), add = TRUE)
  set.seed(2)
  df <- data.frame(y = rnorm(40), x = rnorm(40), stratum = rep(c("a", "b", "c", "d"), 10),
                   school = rep(sprintf("s%02d", 1:10), each = 4))
  w <- tryCatch(rfp_design(y ~ x | stratum, df), warning = function(w) w)
  expect_s3_class(w, "rfp_few_clusters_warning")
  expect_match(conditionMessage(w), "the cluster 'stratum' (right of |) has only 4 levels",
               fixed = TRUE)
  expect_match(conditionMessage(w), "not fixed effects as in fixest")
  expect_match(conditionMessage(w), "fe = ~ stratum")
  expect_match(conditionMessage(w), "CR2")
  # 10 clusters: no warning; rows dropped for missing values count too
  expect_no_warning(rfp_design(y ~ x | school, df))
  df$x[df$school == "s01"] <- NA
  expect_warning(suppressMessages(rfp_design(y ~ x | school, df, na.action = na.omit)),
                 "has only 9 levels", class = "rfp_few_clusters_warning")
  options(rfp.few_clusters = 0L)
  expect_no_warning(rfp_design(y ~ x | stratum, df[!is.na(df$x), ]))
})

test_that("the estimators pass the few-clusters warning on", {
  skip_if_no_backend()
  withr_few <- options(rfp.few_clusters = 10L)
  on.exit(options(withr_few), add = TRUE)
  df <- clustered_data(n_clusters = 4, n_per = 10)
  expect_warning(rfp(y ~ x1 | g, df, model = "linear", max_steps = 3, progress = FALSE),
                 "the cluster 'g' \\(right of \\|\\) has only 4 levels",
                 class = "rfp_few_clusters_warning")
})
