// The Function App on the Flex Consumption plan (Linux, Python 3.11), running as the user-assigned
// identity. HTTPS only, TLS 1.2 minimum, FTP and basic-auth publishing off. The host storage is reached
// with the identity (AzureWebJobsStorage__*), never a key or connection string; the master key is a Key
// Vault reference resolved with the same identity.

@description('Name of the Function App; its default host name is <name>.azurewebsites.net.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Region of the deployment.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Name of the host storage account (AzureWebJobsStorage).')
param hostStorageName string

@description('URL of the blob container that holds the deployment package.')
param deploymentContainerUrl string

@description('Application Insights connection string (holds no secret: local auth is off).')
param appInsightsConnectionString string

@description('The PackCloud settings (PACKCLOUD_*), built in one place in main.bicep.')
param packcloudSettings object

@description('Most instances the app scales out to: the cap on cost under load or attack.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('HTTP requests one instance serves at once; the Python worker gets as many threads (PYTHON_THREADPOOL_THREAD_COUNT). Chosen from bench/concurrency.py: see infra/README.md.')
@minValue(1)
@maxValue(32)
param perInstanceConcurrency int = 16

@description('Memory of one instance, in MB.')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Spread instances over availability zones (keeps at least two instances always ready, billed).')
param zoneRedundant bool = false

// The platform settings: identity-based host storage and Entra-authenticated telemetry. In Flex
// Consumption the runtime and its version are in functionAppConfig, not app settings
// (FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION must not be set).
var platformSettings = {
  AzureWebJobsStorage__accountName: hostStorageName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // One worker thread per request the instance admits: sync functions run in this pool.
  PYTHON_THREADPOOL_THREAD_COUNT: string(perInstanceConcurrency)
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption keeps at least two always-ready instances billed around the clock; the app is stateless and its data (ZRS storage) is already zone-redundant. Turn it on with the zoneRedundant parameter where the region supports it.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: The tracking pixel, its snippet and the web forms are called by browsers anywhere on the internet: public network access is the product. Management routes need a function key.
  // checkov:skip=CKV_AZURE_17: Incoming client certificates cannot be required: the callers are browsers and e-mail clients.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per request and has no numberOfWorkers; the platform replaces unhealthy instances.
  // checkov:skip=CKV_AZURE_213: Flex Consumption does not support the App Service health check (healthCheckPath); availability is watched with Application Insights.
  name: name
  location: location
  // azd finds the app to deploy the code to by this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // Key Vault references (PACKCLOUD_MASTER_KEY) are resolved with the user-assigned identity.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      // Every app setting of the app: the platform ones and the PackCloud ones, nothing else.
      appSettings: [
        for setting in items(union(platformSettings, packcloudSettings)): {
          name: setting.key
          value: setting.value
        }
      ]
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: perInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP and no basic-auth (publishing profile) deployments: code is deployed with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
