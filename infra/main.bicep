// PackCloud, one region: everything a regional deployment needs, in one resource group.
//
//   az deployment group create -g rg-packcloud-eu -f infra/main.bicep -p infra/parameters/eu.parameters.json
//
// (infra/deploy.sh REGION does that, creates the master key once and publishes the code; see
// infra/README.md.) Every resource goes to the Azure region of the region code, whatever the resource
// group's own location: the code decides where the personal data lives.

targetScope = 'resourceGroup'

@description('Region code of this deployment: where its tenants\' personal data is captured and kept.')
@allowed([
  'us'
  'br'
  'eu'
  'ea'
])
param region string

@description('Home deployment: adds the registration role, which writes secrets. The home region is us.')
param isHome bool = region == 'us'

@description('Prefix of the resource names; the app is <namePrefix>-<region>.azurewebsites.net, so it must be globally unique.')
@minLength(3)
@maxLength(20)
param namePrefix string = 'packcloud'

@description('API base URL of every region, for the 421 answers that send a caller to the tenant\'s home region.')
param regionUrls object = {
  us: 'https://${namePrefix}-us.azurewebsites.net/api'
  br: 'https://${namePrefix}-br.azurewebsites.net/api'
  eu: 'https://${namePrefix}-eu.azurewebsites.net/api'
  ea: 'https://${namePrefix}-ea.azurewebsites.net/api'
}

@description('Comma-separated CIDRs of proxies in front of the app whose X-Forwarded-For entries are trusted.')
param trustedProxies string = ''

@description('Seconds tenant and dataset documents are cached in process (0 to 300).')
@minValue(0)
@maxValue(300)
param registryCacheTtlSeconds int = 30

@description('NCRONTAB schedule of the retention purge (hourly at :05).')
param purgeSchedule string = '0 5 * * * *'

@description('NCRONTAB schedule of the attachment mover (Dynamics 365 files into SharePoint, every 5 minutes).')
param attachmentSchedule string = '0 */5 * * * *'

@description('Days audit entries (no personal data) are kept.')
@minValue(30)
@maxValue(3650)
param auditRetentionDays int = 400

@description('Largest request body accepted, in bytes.')
@minValue(1024)
@maxValue(1048576)
param maxBodyBytes int = 65536

@description('Web-form submissions a minute from one client address to one tenant, per instance (0: none). The WAF is the real limit.')
@minValue(0)
param formRatePerMinute int = 30

@description('Path of a MaxMind-format City database deployed with the app (the customer\'s, under its own licence); empty: sign-ins are located by country only.')
param geoCityDbPath string = ''

@description('Speed in km/h between two sign-ins of a user above which travel is impossible.')
@minValue(100)
@maxValue(20000)
param travelSpeedKmh int = 900

@description('Where coordinates are unknown: a country change within this many hours is impossible travel.')
@minValue(0)
@maxValue(48)
param travelWindowHours int = 2

@description('Seconds one storage attempt waits for an answer; after three attempts the request is answered 503.')
@minValue(1)
@maxValue(120)
param storageTimeoutSeconds int = 10

@description('Comma-separated host patterns (* and ?) a registered organisation\'s Dynamics 365 URL must match.')
param dynamicsHostPatterns string = '*.crm.dynamics.com,*.crm?.dynamics.com,*.crm??.dynamics.com'

@description('NCRONTAB schedule of the delivery into Dynamics 365 of the datasets in dataverse mode (every minute).')
param deliverySchedule string = '0 * * * * *'

@description('Upserts per Dataverse $batch request (Dataverse takes 1,000 at most).')
@minValue(1)
@maxValue(1000)
param deliveryBatchSize int = 1000

@description('NCRONTAB schedule of the DPO notifications\' drain (every minute; events also go out as soon as written).')
param dpoSchedule string = '30 * * * * *'

@description('Microsoft Graph base URL where PowerAttachment uploads to SharePoint (a national cloud has its own).')
param graphUrl string = 'https://graph.microsoft.com/v1.0'

@description('NCRONTAB schedule of the reading of Mailchimp campaign activity (every 10 minutes).')
param mailchimpActivitySchedule string = '0 */10 * * * *'

@description('Pages of Mailchimp campaign activity (100 members each) read per run at most.')
@minValue(1)
@maxValue(1000)
param mailchimpActivityPages int = 20

@description('Most instances the app scales out to (cost cap).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Object id of the operator who creates the master key (infra/deploy.sh passes the signed-in principal); empty for none.')
param secretsOperatorPrincipalId string = ''

@description('Type of that operator principal.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param secretsOperatorPrincipalType string = 'User'

// Region code to Azure region. The only place this mapping lives in the templates.
var regionLocations = {
  us: 'eastus'
  br: 'brazilsouth'
  eu: 'westeurope'
  ea: 'eastasia'
}
var location = regionLocations[region]

var token = uniqueString(resourceGroup().id)
var baseName = '${namePrefix}-${region}'
var tags = {
  application: 'packcloud'
  'packcloud-region': region
  'packcloud-role': isHome ? 'regional,registration' : 'regional'
}

// The Key Vault secret the app reads its master key from; infra/deploy.sh creates it once.
var masterKeySecretName = 'packcloud-master-key'

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: 'id-${baseName}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    workspaceName: 'log-${baseName}'
    appInsightsName: 'appi-${baseName}'
    location: location
    tags: tags
  }
}

module hostStorage 'modules/host-storage.bicep' = {
  name: 'host-storage'
  params: {
    name: take('stpchost${region}${token}', 24)
    location: location
    tags: tags
  }
}

module captureStorage 'modules/capture-storage.bicep' = {
  name: 'capture-storage'
  params: {
    name: take('stpccapt${region}${token}', 24)
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/key-vault.bicep' = {
  name: 'key-vault'
  params: {
    name: take('kv-pc-${region}-${token}', 24)
    location: location
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    appPrincipalId: identity.outputs.principalId
    hostStorageName: hostStorage.outputs.name
    captureStorageName: captureStorage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    isHome: isHome
    secretsOperatorPrincipalId: secretsOperatorPrincipalId
    secretsOperatorPrincipalType: secretsOperatorPrincipalType
  }
}

// Every PackCloud setting of the app, in one place: exactly the names of shared/core/settings.py
// (tests/integration/test_infra.py compares them), less PACKCLOUD_STORAGE_CONNECTION_STRING, which is for local
// development only and must never be set in Azure (the app uses the account URL with its identity).
var packcloudSettings = {
  PACKCLOUD_REGION: region
  PACKCLOUD_ROLE: isHome ? 'regional,registration' : 'regional'
  PACKCLOUD_STORAGE_ACCOUNT_URL: captureStorage.outputs.blobEndpoint
  PACKCLOUD_MANAGED_IDENTITY_CLIENT_ID: identity.outputs.clientId
  PACKCLOUD_KEY_VAULT_URL: keyVault.outputs.uri
  PACKCLOUD_MASTER_KEY: '@Microsoft.KeyVault(VaultName=${keyVault.outputs.name};SecretName=${masterKeySecretName})'
  PACKCLOUD_REGISTRY_CACHE_TTL_SECONDS: string(registryCacheTtlSeconds)
  PACKCLOUD_TRUSTED_PROXIES: trustedProxies
  PACKCLOUD_REGION_URLS: string(regionUrls)
  PACKCLOUD_PURGE_SCHEDULE: purgeSchedule
  PACKCLOUD_ATTACHMENT_SCHEDULE: attachmentSchedule
  PACKCLOUD_AUDIT_RETENTION_DAYS: string(auditRetentionDays)
  PACKCLOUD_MAX_BODY_BYTES: string(maxBodyBytes)
  PACKCLOUD_FORM_RATE_PER_MINUTE: string(formRatePerMinute)
  PACKCLOUD_GEO_CITY_DB_PATH: geoCityDbPath
  PACKCLOUD_TRAVEL_SPEED_KMH: string(travelSpeedKmh)
  PACKCLOUD_TRAVEL_WINDOW_HOURS: string(travelWindowHours)
  PACKCLOUD_STORAGE_TIMEOUT_SECONDS: string(storageTimeoutSeconds)
  PACKCLOUD_DYNAMICS_HOST_PATTERNS: dynamicsHostPatterns
  PACKCLOUD_DELIVERY_SCHEDULE: deliverySchedule
  PACKCLOUD_DELIVERY_BATCH_SIZE: string(deliveryBatchSize)
  PACKCLOUD_DPO_SCHEDULE: dpoSchedule
  PACKCLOUD_MAILCHIMP_API_BASE: 'https://{dc}.api.mailchimp.com/3.0'
  PACKCLOUD_MAILCHIMP_ACTIVITY_SCHEDULE: mailchimpActivitySchedule
  PACKCLOUD_MAILCHIMP_ACTIVITY_PAGES: string(mailchimpActivityPages)
  // Microsoft Entra ID of the cloud this deployment is in (tokens for Dynamics 365 come from there).
  PACKCLOUD_ENTRA_AUTHORITY: environment().authentication.loginEndpoint
  PACKCLOUD_GRAPH_URL: graphUrl
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  // The identity must hold its roles before the host starts and resolves the Key Vault reference.
  dependsOn: [
    roles
  ]
  params: {
    name: baseName
    planName: 'plan-${baseName}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostStorageName: hostStorage.outputs.name
    deploymentContainerUrl: hostStorage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.connectionString
    packcloudSettings: packcloudSettings
    maximumInstanceCount: maximumInstanceCount
  }
}

// Outputs read by infra/deploy.sh and azd (which turns them into environment values).
output AZURE_LOCATION string = location
output REGION_CODE string = region
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}/api'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_MASTER_KEY_SECRET string = masterKeySecretName
output CAPTURE_STORAGE_ACCOUNT string = captureStorage.outputs.name
output HOST_STORAGE_ACCOUNT string = hostStorage.outputs.name
output APP_IDENTITY_CLIENT_ID string = identity.outputs.clientId
