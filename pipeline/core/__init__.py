"""Shared, torch-free kit of the whole project: one error tree (errors), hashes and atomic writes (files), the
package version (version), the command kit every CLI is built from (cli), text tables and a prefetch thread."""
