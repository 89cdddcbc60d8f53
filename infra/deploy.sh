#!/usr/bin/env bash
# Deploy PackCloud to one region: `make deploy REGION=eu` or `infra/deploy.sh eu`.
#
#   1. checks the region code, the Azure CLI and its login;
#   2. creates the resource group if needed (in the region's own Azure region);
#   3. deploys infra/main.bicep with infra/parameters/<region>.parameters.json;
#   4. creates the master-key secret once if it does not exist (infra/master-key.sh; never rotates it);
#   5. publishes the code committed at HEAD (the files .funcignore does not exclude), then restarts the app
#      so that the Key Vault reference is resolved;
#   6. prints what to check.
#
# Environment (all optional):
#   PACKCLOUD_NAME_PREFIX     resource name prefix, default "packcloud"; the app is <prefix>-<region>, whose
#                             host name <prefix>-<region>.azurewebsites.net must be globally unique
#   PACKCLOUD_RESOURCE_GROUP  resource group, default rg-<prefix>-<region>
#   PACKCLOUD_WHAT_IF=1       only show what the deployment would change (az deployment group what-if)
#   PACKCLOUD_SKIP_CODE=1     deploy the infrastructure and the master key, not the code
#   PACKCLOUD_PYTHON          the Python 3.11 that compiles PackCloud's modules into the package, default python3.11
#
# Needs: bash, git, the Azure CLI 2.60+ logged in (it installs Bicep on first use), and Owner or
# Contributor + User Access Administrator on the subscription or the resource group (the deployment
# creates role assignments and one custom role).
set -euo pipefail

die() {
  echo "deploy: $*" >&2
  exit 1
}

usage() {
  echo "usage: infra/deploy.sh REGION    (REGION is one of: us, br, eu, ea)" >&2
  exit 2
}

[[ $# -eq 1 ]] || usage
REGION=$1
# Region code to Azure region: the same mapping as regionLocations in infra/main.bicep (a test keeps
# the two equal). The resource group's metadata stays in the region too.
case "$REGION" in
  us) LOCATION=eastus ;;
  br) LOCATION=brazilsouth ;;
  eu) LOCATION=westeurope ;;
  ea) LOCATION=eastasia ;;
  *) usage ;;
esac

INFRA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$INFRA")
PREFIX=${PACKCLOUD_NAME_PREFIX:-packcloud}
RESOURCE_GROUP=${PACKCLOUD_RESOURCE_GROUP:-rg-$PREFIX-$REGION}
PARAMETERS="$INFRA/parameters/$REGION.parameters.json"
[[ -f "$PARAMETERS" ]] || die "missing $PARAMETERS"

command -v az >/dev/null 2>&1 ||
  die "the Azure CLI (az) is not installed: https://learn.microsoft.com/cli/azure/install-azure-cli"
az account show >/dev/null 2>&1 ||
  die "the Azure CLI is not logged in: run 'az login' (and 'az account set --subscription <id>')"

SUBSCRIPTION=$(az account show --query name -o tsv)
echo "deploy: region $REGION ($LOCATION), resource group $RESOURCE_GROUP, subscription '$SUBSCRIPTION'"

# The signed-in principal gets Key Vault Secrets Officer on the vault, to create the master key once.
case "$(az account show --query user.type -o tsv)" in
  user)
    OPERATOR_ID=$(az ad signed-in-user show --query id -o tsv)
    OPERATOR_TYPE=User
    ;;
  servicePrincipal)
    OPERATOR_ID=$(az ad sp show --id "$(az account show --query user.name -o tsv)" --query id -o tsv)
    OPERATOR_TYPE=ServicePrincipal
    ;;
  *) die "unknown kind of signed-in account: $(az account show --query user.type -o tsv)" ;;
esac

if [[ "$(az group exists --name "$RESOURCE_GROUP")" == true ]]; then
  echo "deploy: resource group $RESOURCE_GROUP exists"
else
  az group create --name "$RESOURCE_GROUP" --location "$LOCATION" \
    --tags application=packcloud "packcloud-region=$REGION" -o none
  echo "deploy: created resource group $RESOURCE_GROUP in $LOCATION"
fi

DEPLOYMENT="packcloud-$REGION-$(date -u +%Y%m%d%H%M%S)"
DEPLOY_ARGS=(
  --resource-group "$RESOURCE_GROUP"
  --name "$DEPLOYMENT"
  --template-file "$INFRA/main.bicep"
  --parameters "@$PARAMETERS"
  --parameters "namePrefix=$PREFIX" "secretsOperatorPrincipalId=$OPERATOR_ID" "secretsOperatorPrincipalType=$OPERATOR_TYPE"
)

if [[ "${PACKCLOUD_WHAT_IF:-0}" == 1 ]]; then
  az deployment group what-if "${DEPLOY_ARGS[@]}"
  exit 0
fi

echo "deploy: deploying infra/main.bicep as $DEPLOYMENT (a few minutes)"
az deployment group create "${DEPLOY_ARGS[@]}" -o none

output() {
  az deployment group show --resource-group "$RESOURCE_GROUP" --name "$DEPLOYMENT" \
    --query "properties.outputs.$1.value" -o tsv
}
APP=$(output AZURE_FUNCTION_APP_NAME)
APP_URL=$(output AZURE_FUNCTION_APP_URL)
VAULT=$(output AZURE_KEY_VAULT_NAME)
SECRET=$(output AZURE_KEY_VAULT_MASTER_KEY_SECRET)
CAPTURE=$(output CAPTURE_STORAGE_ACCOUNT)

"$INFRA/master-key.sh" "$VAULT" "$SECRET"

if [[ "${PACKCLOUD_SKIP_CODE:-0}" != 1 ]]; then
  command -v git >/dev/null 2>&1 || die "git is needed to package the code (or set PACKCLOUD_SKIP_CODE=1)"
  git -C "$ROOT" diff --quiet HEAD -- || echo "deploy: note: uncommitted changes are not deployed (the package is HEAD)"
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  # Every file of HEAD except those .funcignore excludes (tests, infra, dev tooling, local settings).
  git -C "$ROOT" ls-files --cached --ignored --exclude-from="$ROOT/.funcignore" >"$WORK/excluded.txt"
  git -C "$ROOT" ls-tree -r --name-only HEAD | grep -vxF -f "$WORK/excluded.txt" >"$WORK/files.txt"
  tr '\n' '\0' <"$WORK/files.txt" | xargs -0 git -C "$ROOT" archive --format=zip -o "$WORK/packcloud.zip" HEAD --
  # PackCloud's own modules compiled for the runtime's Python: the app runs from its package, read-only, and would
  # compile them on every cold start (infra/bytecode.py). Without python3.11 the package works, only colder.
  if PYTHON=$(command -v "${PACKCLOUD_PYTHON:-python3.11}"); then
    "$PYTHON" "$INFRA/bytecode.py" "$WORK/packcloud.zip"
  else
    echo "deploy: note: no python3.11 here, so the package carries no bytecode (set PACKCLOUD_PYTHON to one)"
  fi
  echo "deploy: publishing $(wc -l <"$WORK/files.txt" | tr -d ' ') files to $APP (remote build installs requirements.txt)"
  az functionapp deployment source config-zip --resource-group "$RESOURCE_GROUP" --name "$APP" \
    --src "$WORK/packcloud.zip" --build-remote true -o none
fi

# The app may have started before the master key existed: restart so that it resolves the reference.
az functionapp restart --resource-group "$RESOURCE_GROUP" --name "$APP" -o none

SUB_ID=$(az account show --query id -o tsv)
cat <<EOF

deploy: done. PackCloud $REGION is at $APP_URL

Check now (infra/README.md, "After deploying", has the full list):
  1. The master key resolves from Key Vault (status must be "Resolved"):
       az rest --method get --url "https://management.azure.com/subscriptions/$SUB_ID/resourceGroups/$RESOURCE_GROUP/providers/Microsoft.Web/sites/$APP/config/configreferences/appsettings/PACKCLOUD_MASTER_KEY?api-version=2023-12-01" --query properties.status -o tsv
  2. The functions are loaded:
       az functionapp function list --resource-group $RESOURCE_GROUP --name $APP --query "[].name" -o tsv
  3. The pixel answers (a 1x1 GIF, nothing stored for an unknown tenant):
       curl -sS -o /dev/null -w '%{http_code} %{content_type}\n' "$APP_URL/px/unknown/unknown"
  4. Shared keys are off and the lifecycle backstop is in place on the capture account:
       az storage account show -g $RESOURCE_GROUP -n $CAPTURE --query "{sharedKey:allowSharedKeyAccess, tls:minimumTlsVersion, infraEncryption:encryption.requireInfrastructureEncryption}"
       az storage account management-policy show -g $RESOURCE_GROUP --account-name $CAPTURE --query "policy.rules[].{name:name, days:definition.actions.baseBlob.delete.daysAfterCreationGreaterThan, prefixes:definition.filters.prefixMatch}"
  5. No version or soft-deleted copy can outlive a record:
       az storage account blob-service-properties show -g $RESOURCE_GROUP -n $CAPTURE --query "{versioning:isVersioningEnabled, softDelete:deleteRetentionPolicy.enabled, containerSoftDelete:containerDeleteRetentionPolicy.enabled, changeFeed:changeFeed.enabled}"
EOF
