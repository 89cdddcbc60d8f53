// Key Vault of the region: the master key (secret `packcloud-master-key`) from which the per-tenant
// signing and subject-hash keys are derived, and, in the home deployment, the secrets the registration
// role writes. Access is Azure RBAC only (no access policies), so every reader and writer is a role
// assignment that shows up in one place (roles.bicep) and in the activity log.
//
// The secret itself is not created here: infra/deploy.sh creates it once with a random value if it is
// missing, so its value never passes through a template, a parameter or the deployment history.

@description('Name of the vault (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the deployment.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Log Analytics workspace that receives the vault audit log.')
param workspaceId string

@description('Days a deleted secret or vault stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Flex Consumption without VNet integration resolves the Key Vault reference over the public endpoint; access is RBAC-only for named principals and every access is in the audit log. See infra/README.md, Network exposure.
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: the app and infra/deploy.sh must reach the vault; authorisation, not network position, is the control.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // Once on, purge protection cannot be turned off: a deleted key stays recoverable for the period,
    // and nobody, not even an owner, can destroy it early.
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Who read or changed which secret, when: the vault's audit log goes to the workspace.
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'vault-audit'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
