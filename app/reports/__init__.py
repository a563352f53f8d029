"""Reports: rollup tables kept current by jobs, the figures the console shows, exports."""
