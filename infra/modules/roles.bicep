// Every permission in a PackCloud deployment, in one file. The app's identity gets data roles on exactly
// the resources it uses, at the narrowest scope that works, and no management-plane role at all.

@description('Principal (object) id of the app\'s user-assigned managed identity.')
param appPrincipalId string

@description('Name of the host storage account.')
param hostStorageName string

@description('Name of the capture storage account.')
param captureStorageName string

@description('Name of the Key Vault.')
param keyVaultName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Home deployment: the registration role writes secrets, so the app may write them.')
param isHome bool

@description('Object id of the operator who creates the master-key secret (infra/deploy.sh); empty for none.')
param secretsOperatorPrincipalId string = ''

@description('Type of that operator principal.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param secretsOperatorPrincipalType string = 'User'

// Built-in role definition ids (the same in every subscription), each named in the comment above it.

// Storage Blob Data Owner: read, write, delete blobs, set blob tags, manage leases. Host storage only,
// where the Functions host and the Flex deployment need it (host locks, keys, deployment package).
var storageBlobDataOwnerRoleId = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
// Storage Blob Data Contributor: read, write, delete blobs and containers. Capture storage.
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
// Key Vault Secrets User: read secret values. Every deployment (the master key).
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
// Key Vault Secrets Officer: create, update, delete secrets. Home deployment and the operator only.
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
// Monitoring Metrics Publisher: send telemetry to Application Insights with Entra ID (local auth is off).
var monitoringMetricsPublisherRoleId = '3913510d-42f4-4e42-8a64-420c390055eb'

// Blob index tags. Storage Blob Data Contributor does not include the tag data actions, and the app
// writes tags on upload (t, d, cap, exp, sub), reads them, and finds blobs by tags (the purge and
// erasure queries). The only built-in role that has them, Storage Blob Data Owner, also grants
// permanent delete of versions, ACL and ownership changes and immutability super-user rights. Instead a
// custom role adds exactly the three tag actions, assigned on the capture account only.
var blobIndexTagDataActions = [
  'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read'
  'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write'
  'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/filter/action'
]

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource captureStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: captureStorageName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Role names are unique per Entra tenant, so the name carries this resource group's hash.
resource blobIndexTagsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'packcloud-blob-index-tags')
  properties: {
    roleName: 'PackCloud blob index tags ${uniqueString(resourceGroup().id)}'
    description: 'Read and write blob index tags and find blobs by tags. Assigned to the PackCloud app identity on its capture storage account.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: blobIndexTagDataActions
        notDataActions: []
      }
    ]
  }
}

resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, appPrincipalId, storageBlobDataOwnerRoleId)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwnerRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Functions host storage (AzureWebJobsStorage) and Flex deployment package.'
  }
}

resource captureBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(captureStorage.id, appPrincipalId, storageBlobDataContributorRoleId)
  scope: captureStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Capture storage: write records, read them for delivery, delete them on purge and erasure.'
  }
}

resource captureBlobIndexTags 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(captureStorage.id, appPrincipalId, blobIndexTagsRole.id)
  scope: captureStorage
  properties: {
    roleDefinitionId: blobIndexTagsRole.id
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Capture storage: blob index tags for the retention purge and erasure queries.'
  }
}

resource vaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Read the master key (Key Vault reference).'
  }
}

resource vaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (isHome) {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Home deployment only: the registration role writes secrets.'
  }
}

resource appInsightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, monitoringMetricsPublisherRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisherRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Send telemetry with Entra ID (local auth is off).'
  }
}

// The operator running infra/deploy.sh creates the master key once. That principal already holds Owner
// or User Access Administrator on the resource group (it assigns the roles above), so it could grant
// itself this role anyway; the assignment only makes it explicit, and deploy.sh passes it.
resource operatorSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(secretsOperatorPrincipalId)) {
  name: guid(vault.id, secretsOperatorPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: secretsOperatorPrincipalId
    principalType: secretsOperatorPrincipalType
    description: 'Operator who creates the master-key secret once (infra/deploy.sh).'
  }
}
