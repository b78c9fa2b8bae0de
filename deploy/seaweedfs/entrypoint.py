"""Start SeaweedFS `weed mini` with one S3 identity whose keys are read from secret files (never from the image)."""

import json
import os
import shutil
import sys
from pathlib import Path


def secret(var: str, default: str) -> str:
    path = Path(os.environ.get(var) or default)
    if not path.is_file():
        sys.exit(f"smolvlm2-s3: нет файла с ключом {path} ({var}): создайте секрет (docs/deploy.md)")
    return path.read_text(encoding="utf-8").strip()


access = secret("S3_ACCESS_KEY_FILE", "/run/secrets/s3_access_key")
secret_key = secret("S3_SECRET_KEY_FILE", "/run/secrets/s3_secret_key")
identity = {"identities": [{
    "name": "smolvlm2",
    "credentials": [{"accessKey": access, "secretKey": secret_key}],
    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
}]}
config = Path(os.environ.get("S3_CONFIG_PATH", "/tmp/s3-identities.json"))
config.write_text(json.dumps(identity), encoding="utf-8")
config.chmod(0o600)
weed = shutil.which("weed")
argv = [weed, "mini", "-dir=/data", "-ip=127.0.0.1", "-ip.bind=0.0.0.0", "-webdav=false", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.port={os.environ.get('S3_PORT', '8333')}",
        f"-s3.config={config}", *sys.argv[1:]]
os.execv(weed, argv)
