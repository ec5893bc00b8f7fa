# The rfp demo in R (run by `make demo`, which sets RFP_PYTHON and R_LIBS):
# every estimator on the embedded cluster trial, one table with the truth,
# and plots in out/.  Small settings: the whole demo takes a few minutes on
# two CPU cores.
suppressPackageStartupMessages(library(rfp))
options(width = 120, warn = 1)  # warnings print where they happen

started <- Sys.time()
out_dir <- "out"
dir.create(out_dir, showWarnings = FALSE)
stage <- function(text) {
  cat(sprintf("\n[%5.0fs] %s\n", as.numeric(difftime(Sys.time(), started, units = "secs")),
              text))
}
wrote <- function(path, what) cat(sprintf("  wrote %s: %s\n", path, what))
png_file <- function(name, width = 900, height = 600) {
  path <- file.path(out_dir, name)
  grDevices::png(path, width = width, height = height, res = 110)
  path
}

# Two ggplots side by side on the open device (grid viewports; no extra package).
side_by_side <- function(left, right) {
  grid::grid.newpage()
  grid::pushViewport(grid::viewport(layout = grid::grid.layout(1, 2)))
  print(left, vp = grid::viewport(layout.pos.row = 1, layout.pos.col = 1))
  print(right, vp = grid::viewport(layout.pos.row = 1, layout.pos.col = 2))
}

stage("Python backend")
found <- rfp_python()
if (is.null(found) || !rfp_available()) stop("the rfp backend is not available: run `make setup`")
cat(sprintf("  %s (%s)\n", found$python, found$source))

stage("The data: rfp_trial, embedded in the package")
data(rfp_trial, package = "rfp")
truth <- attr(rfp_trial, "truth")
n_treated <- length(unique(rfp_trial$cluster[rfp_trial$d == 1]))
cat(strwrap(sprintf(paste(
  "rfp_trial is a simulated stratified cluster trial: %d pupils in %d schools in %d strata.",
  "Whole schools are treated (d), %d of them, with a probability that rises with the",
  "school covariate z, so treated and control schools differ and a raw difference in means",
  "is biased (%.2f here). Controls vary at both levels: x1 and x2 per pupil, z per school.",
  "The effect is heterogeneous, tau(x) = 1 + 0.5 x1, so the estimands differ: ATE = %.3f,",
  "ATT = %.3f and the partially linear model's variance-weighted PLM = %.3f. We ask every",
  "estimator for its answer on the same rows and set it beside the truth."),
  nrow(rfp_trial), length(unique(rfp_trial$cluster)), length(unique(rfp_trial$stratum)),
  n_treated, mean(rfp_trial$y[rfp_trial$d == 1]) - mean(rfp_trial$y[rfp_trial$d == 0]),
  truth[["ATE"]], truth[["ATT"]], truth[["PLM"]]), width = 100, prefix = "  "), sep = "\n")

stage(paste("rfp_compare(): fixed effects with strata, entropy and cluster balancing,",
            "the method's DML and AIPW, kernel, MAML and ERM (3 folds of whole schools,",
            "cross-fitting repeated over 5 splits)"))
comparison <- rfp_compare(
  y ~ x1 + x2 + z | cluster, data = rfp_trial, treatment = "d", fe = ~stratum,
  truth = truth, folds = 3, repeats = 5, seed = 0, progress = TRUE,
  model = "mlp", hidden = 16, alpha = 0.5, inner_steps = 1, inner_lr = 0.1,
  learning_rate = 0.01, max_steps = 3000, patience = 30)
cat("\n")
print(comparison)
path <- png_file("compare_estimates.png", height = 650)
plot(comparison)
invisible(grDevices::dev.off())
wrote(path, "each estimate with its 95% interval; red tick: the truth for its estimand")

stage("rfp_balance(): entropy balancing of pupils, cluster balancing of schools")
entropy <- rfp_balance(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d")
print(entropy)
schools <- rfp_balance(y ~ x1 + x2 + z | cluster, rfp_trial, treatment = "d",
                       method = "cluster")
print(schools)
path <- png_file("love_plot.png", width = 1100, height = 450)
side_by_side(autoplot(entropy), autoplot(schools))
invisible(grDevices::dev.off())
wrote(path, "|standardised mean difference| before and after weighting (love plot)")

stage("rfp() on the tragic triad: clusters that each cover a small part of x")
triad <- rfp_simulate("tragic_triad", n_clusters = 40, n_per_cluster = 30, overlap = "low",
                      sd_tail = 1, seed = 0)
cat("  fitting the method (alpha = 0.5, one inner step)\n")
method <- rfp(y ~ x | cluster, data = triad, model = "mlp", hidden = c(32, 32), alpha = 0.5,
              inner_steps = 1, inner_lr = 0.1, max_steps = 800, patience = 200, seed = 0,
              progress = TRUE)
cat("\n  fitting ERM (alpha = 1) for reference\n")
erm <- rfp(y ~ x | cluster, data = triad, model = "mlp", hidden = c(32, 32), alpha = 1,
           max_steps = 800, patience = 200, seed = 0, progress = TRUE)
cat("\n")
print(method)
grid <- data.frame(x = seq(min(triad$x), max(triad$x), length.out = 200))
held_out <- rfp_simulate("tragic_triad", n_clusters = 50, n_per_cluster = 30, overlap = "low",
                         sd_tail = 1, seed = 1)
mse <- function(fit) mean((predict(fit, held_out) - held_out$mu)^2)
cat(sprintf("  error against the truth |x| on 50 new clusters: method %.4f, ERM %.4f\n",
            mse(method), mse(erm)))
path <- png_file("fit_curve.png")
curves <- rbind(data.frame(x = grid$x, y = predict(erm, grid), curve = "ERM (alpha = 1)"),
                data.frame(x = grid$x, y = abs(grid$x), curve = "truth |x|"))
# (the demo replaces the plot's line legend with its own three lines)
print(suppressMessages(autoplot(method, which = "covariate") +
        ggplot2::geom_line(data = curves, ggplot2::aes(x, y, linetype = curve),
                           inherit.aes = FALSE) +
        ggplot2::scale_linetype_manual(
          values = c("the fit" = "solid", "ERM (alpha = 1)" = "dashed", "truth |x|" = "dotted"),
          name = NULL) +
        ggplot2::labs(title = "rfp on the tragic triad (40 clusters, low overlap)",
                      subtitle = "solid: the method (alpha = 0.5); points coloured by cluster")))
invisible(grDevices::dev.off())
wrote(path, "the fitted function against x, with ERM and the truth")
path <- png_file("loss_curves.png", width = 1100, height = 550)
side_by_side(autoplot(method) + ggplot2::labs(title = "the method (alpha = 0.5)"),
             autoplot(erm) + ggplot2::labs(title = "ERM (alpha = 1)"))
invisible(grDevices::dev.off())
wrote(path, "training objective and held-out loss by step (method, ERM)")

stage(sprintf("done in %.0f s; plots in %s/", as.numeric(difftime(Sys.time(), started,
                                                                  units = "secs")),
              normalizePath(out_dir)))
