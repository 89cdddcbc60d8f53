#!/usr/bin/env bash
# Make sure the master-key secret of a PackCloud deployment exists: create it ONCE, with a random value,
# if it is missing, and never touch an existing one. Every per-tenant signing key and subject hash is
# derived from this value, so replacing it invalidates every signed link and every stored subject hash:
# that is a deliberate rotation (infra/README.md, "Rotating keys"), never a side effect of a deploy.
#
# usage: infra/master-key.sh VAULT_NAME [SECRET_NAME]
#   Without arguments it reads AZURE_KEY_VAULT_NAME and AZURE_KEY_VAULT_MASTER_KEY_SECRET from the
#   environment (azd sets them from the deployment outputs when it runs this as a postprovision hook).
#
# The value is generated here (48 random bytes, base64), written to a private temporary file that is
# removed on exit, and sent to Key Vault from that file: it is never on a command line, in a template,
# in a deployment parameter or in a log.
set -euo pipefail

VAULT=${1:-${AZURE_KEY_VAULT_NAME:-}}
SECRET=${2:-${AZURE_KEY_VAULT_MASTER_KEY_SECRET:-packcloud-master-key}}

die() {
  echo "master-key: $*" >&2
  exit 1
}

[[ -n "$VAULT" ]] || die "usage: infra/master-key.sh VAULT_NAME [SECRET_NAME]"
command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed: https://learn.microsoft.com/cli/azure/install-azure-cli"
az account show >/dev/null 2>&1 || die "the Azure CLI is not logged in: run 'az login' (and 'az account set --subscription <id>')"

# Role assignments made by the deployment can take a few minutes to reach Key Vault: retry while the
# vault answers Forbidden, then give up with a clear message.
secret_state() {
  local out
  for attempt in $(seq 1 20); do
    if out=$(az keyvault secret show --vault-name "$VAULT" --name "$SECRET" --query id -o tsv 2>&1); then
      echo present
      return 0
    fi
    case "$out" in
      *SecretNotFound* | *"was not found"*) echo missing; return 0 ;;
      *Forbidden* | *"not authorized"*)
        echo "master-key: no access to $VAULT yet (role assignments propagating), retry $attempt/20 in 15 s" >&2
        sleep 15
        ;;
      *) echo "$out" >&2; return 1 ;;
    esac
  done
  die "still no access to vault $VAULT: the signed-in principal needs 'Key Vault Secrets Officer' on it (infra/deploy.sh assigns it through the secretsOperatorPrincipalId parameter)"
}

state=$(secret_state)
if [[ "$state" == present ]]; then
  echo "master-key: $VAULT/$SECRET exists; left unchanged"
  exit 0
fi

# A deleted secret of that name is recoverable (soft delete, purge protection): recovering it keeps the
# derived keys valid, creating a new one would not. That is the operator's decision, not this script's.
if az keyvault secret show-deleted --vault-name "$VAULT" --name "$SECRET" --query recoveryId -o tsv >/dev/null 2>&1; then
  die "$VAULT/$SECRET was deleted and is recoverable. Recover it to keep every derived key valid:
  az keyvault secret recover --vault-name $VAULT --name $SECRET
or, to start over with a new master key (invalidates signed links and subject hashes), wait until it is
purged (the soft-delete retention of the vault) and run this script again."
fi

umask 077
value_file=$(mktemp)
trap 'rm -f "$value_file"' EXIT
head -c 48 /dev/urandom | base64 | tr -d '\n' >"$value_file"
[[ $(wc -c <"$value_file") -ge 64 ]] || die "could not generate a random value"

az keyvault secret set --vault-name "$VAULT" --name "$SECRET" --file "$value_file" --encoding utf-8 \
  --content-type "text/plain; packcloud master key" --tags created-by=infra/master-key.sh \
  --query id -o tsv >/dev/null
echo "master-key: created $VAULT/$SECRET with a new random value"
