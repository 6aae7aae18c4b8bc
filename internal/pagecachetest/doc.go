// Package pagecachetest tells tests which pages of a file are in the page
// cache (mincore(2) on a shared mapping of it, Linux only), to check that
// a program drops the pages it has read for the last time; TempDir gives
// them a directory where pages can be dropped at all.
package pagecachetest
