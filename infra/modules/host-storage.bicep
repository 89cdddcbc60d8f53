// Storage account of the Functions host: host locks and keys, timer schedule state, and the Flex
// Consumption deployment package. It holds no captured personal data (that is the capture account,
// capture-storage.bicep), so that the two can have different access, retention and logging.

@description('Name of the storage account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the deployment.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Blob container that Flex Consumption deploys the app package to.')
param deploymentContainerName string = 'app-package'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches its host storage over the public endpoint; every request is authorised with Entra ID (shared keys are off). See infra/README.md, Network exposure.
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: the account must be reachable by the Functions platform; access is identity-only.
  // checkov:skip=CKV_AZURE_206: Geo-replication would copy data to the paired region, outside the region the customer chose (brazilsouth pairs with southcentralus); zone-redundant storage keeps three copies inside the region.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // No account keys, no account SAS: the host connects with the managed identity
    // (AzureWebJobsStorage__credential = managedidentity).
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    allowedCopyScope: 'AAD'
    isHnsEnabled: false
    isSftpEnabled: false
    isLocalUserEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      requireInfrastructureEncryption: true
      keySource: 'Microsoft.Storage'
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: false
    deleteRetentionPolicy: {
      // No personal data here: a week of soft delete protects the deployment package and host keys.
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
