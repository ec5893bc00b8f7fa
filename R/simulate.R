# Simulated data with known truth (rfp.simulate) and the geometry study of
# clustered samples (rfp.geometry), as R data frames.

#' Simulate clustered data with a known truth
#'
#' * `"tragic_triad"`: one covariate `x`, clusters differing in where their
#'   `x` lies (low overlap by default) and in their tails; the conditional
#'   mean for a new cluster is \eqn{|x|} (column `mu`). Arguments:
#'   `n_clusters`, `n_per_cluster`, `overlap` (`"low"`, `"high"`),
#'   `zero_mean`, `tau`, `sd_tail`, `knot`, `noise`.
#' * `"clustered_means"`: the same in `dim` dimensions (`x1`, ..., `xd`),
#'   \eqn{\mu(x) = |a'x|} (column `mu`). Arguments: `n_clusters`,
#'   `n_per_cluster`, `dim`, `tau`, `s`, `sd_tail`, `knot`, `noise`.
#' * `"cluster_trial"`: treatment `d` assigned to whole clusters within
#'   strata, with selection on a cluster covariate `z`; controls `x1`, `x2`,
#'   `z`; effect \eqn{\tau} (`effect = "constant"`) or \eqn{\tau + \kappa
#'   x_1} (`"heterogeneous"`). Columns also hold the truth per row: `tau_i`
#'   (the individual effect), `e` (the propensity), `mu0` (E\[Y(0) | x, z\]
#'   without the cluster effect). Arguments: `n_strata`,
#'   `clusters_per_stratum`, `n_per_cluster`, `effect`, `overlap`, `tau`,
#'   `kappa`, `sd_cluster_effect`, `noise`.
#'
#' @param design Which design.
#' @param ... Arguments of the design (above).
#' @param seed Random seed.
#' @return A data frame with the attribute `settings` (a list); for
#'   `"cluster_trial"` also `truth`, the population effects `c(ATE = ,
#'   ATT = , PLM = )` (`PLM`: the variance-weighted effect a partially linear
#'   model estimates), and `sample_truth`, `c(SATE = , SATT = )` over the
#'   simulated rows.
#' @examples
#' \donttest{
#' if (rfp_available()) {
#'   sim <- rfp_simulate("cluster_trial", n_strata = 2, clusters_per_stratum = 5)
#'   attr(sim, "truth")
#'   head(rfp_simulate("tragic_triad", n_clusters = 10))
#' }
#' }
#' @export
rfp_simulate <- function(design = c("tragic_triad", "clustered_means", "cluster_trial"), ...,
                         seed = 0L) {
  design <- match.arg(design)
  args <- list(...)
  if (length(args) && (is.null(names(args)) || any(!nzchar(names(args))))) {
    stop("arguments of the design in ... must be named (e.g. n_clusters = 20)", call. = FALSE)
  }
  counts <- c("n_clusters", "n_per_cluster", "dim", "n_strata", "clusters_per_stratum")
  for (name in intersect(names(args), counts)) args[[name]] <- check_whole(args[[name]], name, 1)
  args$seed <- check_whole(seed, "seed", 0)
  b <- backend()
  sim <- py_call(do.call(b$facade$simulate, c(list(design), args)))
  out <- r_table(sim$data)
  settings <- r_plain(sim$settings)
  truth <- settings$truth
  settings$truth <- NULL
  attr(out, "settings") <- settings
  if (!is.null(truth)) {
    truth <- unlist(truth)
    attr(out, "truth") <- truth[c("ATE", "ATT", "PLM")]
    attr(out, "sample_truth") <- truth[c("SATE", "SATT")]
  }
  out
}

#' How clustered samples fill space as the dimension grows
#'
#' For each dimension d: 25 clusters of 25 points (by default), x ~
#' N(mu_c, 0.5^2 I_d) with cluster means mu_c ~ N(0, I_d), and new points
#' from the same clusters. Reports the share of new points inside the
#' training sample's convex hull (an LP per point), the mean fraction of a
#' new point's 5 nearest training neighbours that come from another cluster,
#' and the hull share for an i.i.d. sample of the same size (Fig. 7 of
#' "Regularizing the Forward Pass").
#'
#' @param dims Dimensions to study.
#' @param n_clusters Number of clusters.
#' @param n_per_cluster Points per cluster.
#' @param seed Random seed.
#' @return A data frame with columns `dim`, `hull_share`, `other_cluster`,
#'   `hull_share_iid`.
#' @examples
#' \donttest{
#' if (rfp_available()) rfp_geometry(dims = c(1, 2, 4), n_clusters = 10, n_per_cluster = 10)
#' }
#' @export
rfp_geometry <- function(dims = c(1, 2, 4, 8, 16, 32), n_clusters = 25L, n_per_cluster = 25L,
                         seed = 0L) {
  dims <- check_whole(dims, "dims", 1, scalar = FALSE)
  b <- backend()
  study <- py_call(b$facade$dimension_study(
    dims = as.list(dims), n_clusters = check_whole(n_clusters, "n_clusters", 2),
    n_per_cluster = check_whole(n_per_cluster, "n_per_cluster", 1),
    seed = check_whole(seed, "seed", 0)))
  out <- r_table(study)
  out$dim <- as.integer(out$dim)
  out
}
