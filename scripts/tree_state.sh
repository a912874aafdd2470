#!/usr/bin/env bash
# Prints a fingerprint of the working tree (git status of tracked and unignored files, and a hash of their diff); `make test`
# compares it before and after, so a test that writes into the tree fails the run. Prints nothing outside a git checkout.
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || exit 0
git status --porcelain=v1 --untracked-files=all
git diff --binary HEAD 2>/dev/null | sha256sum
