#!/usr/bin/env bash
# upload-image.sh: the operator's path from a directory to a mountable encrypted image in Azure
# Blob Storage.
#
#   scripts/upload-image.sh [options] SRC_DIR [BLOB_URL]
#
# It checks that the credential can upload to BLOB_URL (in a second, before packing), creates a
# release key (or takes --key FILE), packs SRC_DIR into an encfs image, uploads it to BLOB_URL
# (https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB), and prints the key fingerprint and a
# mount command that has a credential.
#
# A SAS URL is a secret: rather than as an argument (which every local user can read in ps),
# give it in ENCFS_URL or with --url-file FILE.
#
# Options:
#   --key FILE        release key file: used if it exists, created there if not (default ./encfs.key)
#   --image FILE      where to write the packed image (default: a temporary file, removed after)
#   --page-blob       upload a page blob instead of a block blob
#   --overwrite       replace a blob that holds a different image
#   --url-file FILE   read BLOB_URL (with its SAS) from FILE
#   --client-id ID    user-assigned managed identity for the upload
#   --read-sas HOURS  also make a read-only SAS URL valid for HOURS, written to --read-url-file:
#                     signed with the account key when AZURE_STORAGE_CONNECTION_STRING is set
#                     (encfs sas), else a user delegation SAS made with the az CLI
#   --read-url-file FILE  where --read-sas writes the read URL (default ./encfs-read.url, mode 0600)
#   --encfs PATH      the encfs binary (default: $ENCFS, encfs on PATH, or built from this repository)
#
# Credentials for the upload, in order: a SAS in BLOB_URL (sp=cw at least),
# AZURE_STORAGE_CONNECTION_STRING, or a Microsoft Entra identity (az login, managed identity,
# workload identity) with the Storage Blob Data Contributor role on the container.
set -euo pipefail

die() {
	echo "upload-image.sh: $*" >&2
	exit 1
}
usage() {
	sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

key="./encfs.key"
image=""
encfs="${ENCFS:-}"
read_sas=""
read_url_file="./encfs-read.url"
url_file=""
client_id=""
upload_flags=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--key) key="${2:?--key needs a file}"; shift 2 ;;
	--image) image="${2:?--image needs a file}"; shift 2 ;;
	--page-blob) upload_flags+=(--page-blob); shift ;;
	--overwrite) upload_flags+=(--overwrite); shift ;;
	--client-id) client_id="${2:?--client-id needs an ID}"; upload_flags+=(--client-id "$client_id"); shift 2 ;;
	--read-sas) read_sas="${2:?--read-sas needs a number of hours}"; shift 2 ;;
	--read-url-file) read_url_file="${2:?--read-url-file needs a file}"; shift 2 ;;
	--url-file) url_file="${2:?--url-file needs a file}"; shift 2 ;;
	--encfs) encfs="${2:?--encfs needs a path}"; shift 2 ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	-*) echo "upload-image.sh: unknown option $1" >&2; usage 2 ;;
	*) break ;;
	esac
done
[[ $# -eq 1 || $# -eq 2 ]] || { echo "upload-image.sh: want SRC_DIR and BLOB_URL" >&2; usage 2; }
src="$1"
if [[ $# -eq 2 ]]; then
	url="$2"
	[[ "$url" != *"sig="* ]] || echo "upload-image.sh: warning: the SAS on the command line can be read by every local user; use ENCFS_URL or --url-file" >&2
elif [[ -n "$url_file" ]]; then
	url="$(tr -d '\r\n' <"$url_file")" || die "cannot read --url-file $url_file"
elif [[ -n "${ENCFS_URL:-}" ]]; then
	url="$ENCFS_URL"
else
	die "no BLOB_URL: give it as an argument, in ENCFS_URL, or with --url-file FILE"
fi

[[ -d "$src" ]] || die "$src is not a directory; give the directory to pack"
case "$url" in
https://* | http://* | azure://*) ;;
*) die "$url is not a URL; give https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB" ;;
esac
if [[ -n "$read_sas" && ! "$read_sas" =~ ^[0-9]+$ ]]; then
	die "--read-sas $read_sas: give a whole number of hours"
fi

# A URL without its query string, for printing (a SAS signature is a secret).
plain_url="${url%%\?*}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The encfs binary.
if [[ -z "$encfs" ]]; then
	if command -v encfs >/dev/null 2>&1; then
		encfs="$(command -v encfs)"
	else
		repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
		command -v go >/dev/null 2>&1 || die "no encfs binary: put encfs on PATH, set ENCFS, or install Go to build it from $repo"
		echo "building encfs from $repo ..." >&2
		(cd "$repo" && go build -o "$work/encfs" ./cmd/encfs) || die "go build failed"
		encfs="$work/encfs"
	fi
fi
[[ -x "$encfs" ]] || die "$encfs is not executable"

# Credentials: find out before packing, not after, that the upload can work. encfs gets the URL
# in ENCFS_URL, never as an argument.
if [[ "$url" != *"sig="* && -z "${AZURE_STORAGE_CONNECTION_STRING:-}" ]]; then
	if [[ -z "${IDENTITY_ENDPOINT:-}${MSI_ENDPOINT:-}${AZURE_FEDERATED_TOKEN_FILE:-}${AZURE_CLIENT_SECRET:-}${client_id}" ]]; then
		if ! command -v az >/dev/null 2>&1; then
			die "no credential for the upload: the URL has no SAS, AZURE_STORAGE_CONNECTION_STRING is not set, no managed or workload identity is configured, and the az CLI is missing (install azure-cli and run 'az login', or pass a SAS URL)"
		fi
		az account show >/dev/null 2>&1 || die "the az CLI is not logged in: run 'az login' (or pass a SAS URL)"
	fi
fi
check_flags=()
[[ -n "$client_id" ]] && check_flags+=(--client-id "$client_id")
ENCFS_URL="$url" "$encfs" upload --check "${check_flags[@]}" >&2 || die "the upload cannot work (see above); nothing was packed"
if [[ -n "$read_sas" && -z "${AZURE_STORAGE_CONNECTION_STRING:-}" ]] && ! command -v az >/dev/null 2>&1; then
	die "--read-sas needs AZURE_STORAGE_CONNECTION_STRING (to sign with the account key) or the az CLI: set one (https://learn.microsoft.com/cli/azure/install-azure-cli) or drop --read-sas"
fi

# 1. The release key.
if [[ -e "$key" ]]; then
	echo "using the key in $key" >&2
else
	"$encfs" keygen --out "$key"
	echo "created a new key in $key (keep it secret; import it into Key Vault for production)" >&2
fi

# 2. Pack.
if [[ -z "$image" ]]; then
	image="$work/image.encfs"
fi
"$encfs" pack --key-file "$key" "$src" "$image"

# 3. Upload.
ENCFS_URL="$url" "$encfs" upload "${upload_flags[@]}" "$image"

# 4. Optionally a read-only SAS for the sidecar, in a file (it is a secret).
mount_cmd=""
if [[ -n "$read_sas" ]]; then
	if [[ -n "${AZURE_STORAGE_CONNECTION_STRING:-}" ]]; then
		"$encfs" sas --permissions r --expires "${read_sas}h" --out "$read_url_file" "$plain_url" ||
			die "encfs sas failed"
	else
		rest="${plain_url#*://}"
		host="${rest%%/*}"
		path="${rest#*/}"
		account="${host%%.*}"
		container="${path%%/*}"
		blob="${path#*/}"
		expiry="$(date -u -d "+${read_sas} hours" '+%Y-%m-%dT%H:%MZ')"
		sas="$(az storage blob generate-sas --account-name "$account" --container-name "$container" \
			--name "$blob" --permissions r --expiry "$expiry" --https-only --auth-mode login --as-user -o tsv)" ||
			die "az storage blob generate-sas failed (a user delegation SAS needs 'az login' and the Storage Blob Delegator role)"
		(umask 077 && printf '%s?%s\n' "$plain_url" "$sas" >"$read_url_file")
	fi
	echo "a read-only SAS URL valid for ${read_sas} hours is in $read_url_file: treat it as a secret" >&2
	mount_cmd="encfs mount --key-file $key --url-file $read_url_file /mnt/encfs"
elif [[ "$url" == *"sig="* ]]; then
	mount_cmd="encfs mount --key-file $key --url-file FILE /mnt/encfs   # FILE: '$plain_url?<a SAS with sp=r>' (make one with --read-sas HOURS)"
elif [[ -n "${AZURE_STORAGE_CONNECTION_STRING:-}" ]]; then
	mount_cmd="encfs mount --key-file $key '$plain_url' /mnt/encfs   # with AZURE_STORAGE_CONNECTION_STRING set as now"
else
	mount_cmd="encfs mount --key-file $key '$plain_url' /mnt/encfs   # as an identity with the Storage Blob Data Reader role"
fi

# 5. What to hand to the deployment.
fingerprint="$("$encfs" key fingerprint "$key")"
cat <<MSG

image uploaded: $plain_url
key fingerprint: $fingerprint

mount it (development, with the key file):
  $mount_cmd

in a confidential container group, import the key with a release policy
('encfs key import --help') and mount the same URL with the sidecar's key release options.
MSG
