// The capture storage account: every piece of personal data PackCloud holds in this region, and only
// that (plus the purpose registry and the audit trail). Separate from the host storage so that its
// access (one identity, Entra ID only), its retention (30 days at most) and its logging are its own.
//
// GDPR: storage limitation (art. 5(1)(e)) is enforced by the app's hourly timer purge, which deletes
// each record at its `exp` tag; the lifecycle rule below is the backstop. No other copy outlives the
// record: blob versioning, blob soft delete, container soft delete, snapshots-on-write and the change
// feed are all off, and the account is not geo-replicated (data stays in the chosen region, art. 44).

@description('Name of the storage account (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the deployment.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Log Analytics workspace that receives the blob data-access logs (who read, wrote, deleted).')
param workspaceId string

@description('Days after creation at which the lifecycle backstop deletes records and state. Never more than 30.')
@minValue(1)
@maxValue(30)
param backstopDays int = 30

// The containers the app uses (shared/storage/blobs.py). Only records/ and state/ hold personal data.
var registryContainer = 'registry' // tenant and dataset definitions: no personal data
var recordsContainer = 'records' // captured personal data, one blob per record, with index tags
var stateContainer = 'state' // auto-number sequences and per-user state
var auditContainer = 'audit' // audit trail, no personal data, kept ~400 days by the app
var containerNames = [
  registryContainer
  recordsContainer
  stateContainer
  auditContainer
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches the account over its public endpoint; every request is authorised with Entra ID for one managed identity (shared keys are off). See infra/README.md, Network exposure.
  // checkov:skip=CKV_AZURE_59: Same reason as CKV_AZURE_35: the endpoint is public, access is identity-only and logged.
  // checkov:skip=CKV_AZURE_206: Geo-replication would copy personal data out of the region the customer chose (brazilsouth pairs with southcentralus, eastasia with southeastasia); zone-redundant storage keeps three copies inside the region.
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
    // No account keys, no account SAS, no connection string anywhere: only Entra ID principals with a
    // data role (the app's identity) can read or write.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    // Personal data may not be copied or replicated to an account of another tenant.
    allowCrossTenantReplication: false
    allowedCopyScope: 'AAD'
    // Blob index tags (t, d, cap, exp, sub) need a flat namespace.
    isHnsEnabled: false
    isSftpEnabled: false
    isLocalUserEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      // Double encryption at rest (service and infrastructure level, two keys, two algorithms).
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
    // A deleted or overwritten record must be gone, not kept as a version.
    isVersioningEnabled: false
    // No soft delete: a purged record must not survive in a soft-deleted state past the 30-day bound.
    deleteRetentionPolicy: {
      enabled: false
    }
    containerDeleteRetentionPolicy: {
      enabled: false
    }
    // The change feed would keep a log of blob names and tags (the subject hash) beyond the record.
    changeFeed: {
      enabled: false
    }
    restorePolicy: {
      enabled: false
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for containerName in containerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

// Backstop for storage limitation: deletes records and state 30 days after they were written, if the
// timer purge has not already done so. Lifecycle management runs about once a day and may lag up to
// 48 hours, so it is never the mechanism, only the net. audit/ (no personal data, kept longer) and
// registry/ (definitions, no personal data) are not touched.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-personal-data-after-30-days'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              // records/ and state/ are block blobs (append blobs are only used by audit/).
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${recordsContainer}/'
                '${stateContainer}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterCreationGreaterThan: backstopDays
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: backstopDays
                }
              }
              version: {
                delete: {
                  daysAfterCreationGreaterThan: backstopDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

// Accountability (art. 5(2)) and security monitoring (art. 32): every read, write and delete of blob
// data, with the caller's identity, goes to the workspace (kept 30 days). Log entries name blobs by id
// and may carry the subject hash of an erasure query, never field values.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'blob-data-access'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output containerNames array = containerNames
