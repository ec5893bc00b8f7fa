# The README's R example on seeds 1-10 (issue 18): the default tuned fit
# against the untuned ERM fit (alpha = 1, every other setting at its default)
# and the training mean, by mean squared error against the true conditional
# mean on 50 new clusters (test seed 1000 + s).
#
#   R_LIBS=.venv/Rlib RFP_PYTHON=$PWD/.venv/bin/python \
#     Rscript validation/readme_example.R validation/readme_example_raw.csv
library(rfp)
out <- commandArgs(TRUE)[1]
rows <- list()
for (s in 1:10) {
  df <- rfp_simulate("tragic_triad", n_clusters = 40, seed = s)
  new <- rfp_simulate("tragic_triad", n_clusters = 50, seed = 1000 + s)
  t0 <- proc.time()[["elapsed"]]
  tuned <- suppressWarnings(rfp(y ~ x | cluster, data = df, tune = TRUE, seed = s,
                                progress = FALSE))
  t1 <- proc.time()[["elapsed"]]
  erm <- suppressWarnings(rfp(y ~ x | cluster, data = df, alpha = 1, seed = s,
                              progress = FALSE))
  t2 <- proc.time()[["elapsed"]]
  chosen <- tuned$cv[tuned$cv$chosen, ]
  rows[[s]] <- data.frame(
    seed = s,
    default = mean((predict(tuned, newdata = new) - new$mu)^2),
    erm_untuned = mean((predict(erm, newdata = new) - new$mu)^2),
    mean = mean((mean(df$y) - new$mu)^2),
    chosen = paste(chosen$model, if (!is.na(chosen$alpha)) chosen$alpha else ""),
    seconds_default = t1 - t0, seconds_erm = t2 - t1)
  print(rows[[s]])
}
res <- do.call(rbind, rows)
utils::write.csv(res, out, row.names = FALSE)
d <- res$default - res$erm_untuned
cat(sprintf("\nmean error: default %.4f, untuned ERM %.4f, mean %.4f\n",
            mean(res$default), mean(res$erm_untuned), mean(res$mean)))
cat(sprintf("default - untuned ERM: %+.4f (SE %.4f over seeds), lower in %d/10\n",
            mean(d), sd(d) / sqrt(10), sum(d < 0)))
