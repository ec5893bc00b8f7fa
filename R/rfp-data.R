#' A simulated stratified cluster trial with a known effect
#'
#' 800 pupils in 40 schools (clusters) in 4 strata. Within each stratum,
#' whole schools were treated with a probability that rises with the school
#' covariate `z`, so the treated and control schools differ and a naive
#' difference in means is biased; given `x1`, `x2` and `z`, treatment is as
#' good as random. The effect is heterogeneous, \eqn{\tau(x) = 1 + 0.5
#' x_1}. Drawn by the backend's `rfp.simulate.cluster_trial` (see
#' [rfp_simulate()]) with `effect = "heterogeneous"`, `seed = 3`, values
#' rounded to 4 decimals; the script is `data-raw/rfp_trial.R` in the
#' source repository.
#'
#' @format A data frame with 800 rows and 7 columns:
#' \describe{
#'   \item{y}{outcome}
#'   \item{d}{treatment (0/1), constant within each school}
#'   \item{x1, x2}{pupil-level controls (they also depend on `z`)}
#'   \item{z}{school-level control, constant within each school}
#'   \item{cluster}{school (1 to 40)}
#'   \item{stratum}{randomisation stratum (1 to 4)}
#' }
#' Attributes: `truth`, the population effects `c(ATE = 1, ATT = 1.106,
#' PLM = 1)` (PLM: the variance-weighted effect a partially linear model
#' estimates), and `sample_truth`, the average effect over these 800 pupils
#' (`SATE`) and over the treated ones (`SATT`).
#' @source Simulated; see `data-raw/rfp_trial.R`.
#' @examples
#' data(rfp_trial)
#' attr(rfp_trial, "truth")
#' table(treated = tapply(rfp_trial$d, rfp_trial$cluster, mean),
#'       stratum = tapply(rfp_trial$stratum, rfp_trial$cluster, mean))
"rfp_trial"
