"""`emoprep export … --push-to-hub REPO`: upload an export folder to a Hugging Face Hub dataset
repository. A thin call to `huggingface_hub` (create the repo, private unless asked, then
upload the folder in one commit); it needs network access and a token (`hf auth login` or
HF_TOKEN), so the tests only check what it asks the library for."""
from __future__ import annotations

from pathlib import Path

from emoprep.manifests.export.step import WORK_DIR
from emoprep.pipeline.lock import LOCK_NAME

SKIP = [f"{WORK_DIR}/*", f"{LOCK_NAME}*"]  # the step's own bookkeeping stays local


def push_to_hub(dest: Path, repo_id: str, private: bool = True, token: str | None = None) -> str:
    """Upload `dest` to the dataset repo `repo_id`; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(dest), repo_id=repo_id, repo_type="dataset",
                               ignore_patterns=SKIP, commit_message="emoprep export")
    return str(getattr(commit, "commit_url", commit))
