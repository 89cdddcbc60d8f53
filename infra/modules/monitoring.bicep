// Log Analytics workspace and Application Insights.
//
// Telemetry can carry personal data (client locations derived from addresses; host.json keeps query strings
// out), so the workspace keeps it for `retentionInDays` (30, the product's bound and the workspace minimum)
// and no longer. Local
// (key-based) authentication is off on both: telemetry is sent with the app's managed identity (role
// Monitoring Metrics Publisher, see roles.bicep) and read with Entra ID.

@description('Name of the Log Analytics workspace.')
param workspaceName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Region of the deployment.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Days that logs and telemetry are kept. 30 is the workspace minimum and the personal-data bound.')
@minValue(30)
@maxValue(30)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      // No workspace shared keys: agents and queries authenticate with Entra ID.
      disableLocalAuth: true
      // Data is deleted when its retention ends, not kept until the workspace is deleted.
      immediatePurgeDataOn30Days: true
    }
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    // Instrumentation keys are not accepted: the app authenticates with its identity (Entra ID).
    DisableLocalAuth: true
    // Client IP addresses are masked (stored as 0.0.0.0): data minimisation.
    DisableIpMasking: false
    RetentionInDays: retentionInDays
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

output workspaceId string = workspace.id
output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
output connectionString string = appInsights.properties.ConnectionString
