"""Where was a run made: on which git branch and commit? What a history entry records of the
work tree a run was started in, so `harness history --branch NAME` can keep one branch's runs.

The branch is HEAD's branch (`git symbolic-ref --short HEAD`, which also names the branch of a
work tree with no commit yet). On a detached HEAD (a CI checkout) it is the branch CI names:
$GITHUB_HEAD_REF (a GitHub pull request's source branch), else $GITHUB_REF_NAME (GitHub
Actions), else $CI_COMMIT_REF_NAME (GitLab CI), else None. The commit is `git rev-parse HEAD`.
Outside a git work tree, without git, or when git fails or takes too long, both are None:
git never fails a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.gitinfo import git

# the branch of a detached HEAD, as CI systems name it (first set wins)
CI_BRANCH_ENV = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME")


@dataclass(frozen=True)
class GitState:
    """The branch and commit of a work tree; None where unknown."""

    branch: str | None = None
    commit: str | None = None


def git_state(directory: str | Path | None = None) -> GitState:
    """The branch and commit of the git work tree holding `directory` (default: the working
    directory); GitState(None, None) outside one. See the module docstring for a detached
    HEAD."""
    where = Path(directory) if directory is not None else Path.cwd()
    if not where.is_dir() or git(where, "rev-parse", "--is-inside-work-tree") != "true":
        return GitState()
    branch = git(where, "symbolic-ref", "--short", "-q", "HEAD") or None
    if branch is None:  # detached HEAD: what CI says it checked out, if anything
        branch = next((os.environ[name] for name in CI_BRANCH_ENV if os.environ.get(name)), None)
    return GitState(branch, git(where, "rev-parse", "--verify", "-q", "HEAD") or None)
