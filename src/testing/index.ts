/**
 * `effect-cacheback/testing`: a simulated deployment to property-test a cacheback
 * deployment with (`Simulation`), and the test queue drained by hand (`TestRefreshQueue`,
 * also in the main entry).
 *
 * @since 0.4.0
 */

/**
 * @since 0.4.0
 */
export * as Simulation from "./Simulation.js"

/**
 * @since 0.4.0
 */
export * as TestRefreshQueue from "../TestRefreshQueue.js"
