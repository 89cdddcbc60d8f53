// The user-assigned managed identity of the Function App: the one principal that reads and writes the
// capture account, reads the master key and sends telemetry. User-assigned (not system-assigned) so that
// its role assignments exist before the app starts, and its client id can be an app setting.

@description('Name of the identity.')
param name string

@description('Region of the deployment.')
param location string

@description('Tags applied to every resource.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
