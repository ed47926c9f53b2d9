package config

import (
	"sort"
	"strings"
	"unicode"
)

// azureRegions are Azure's public regions by normalized name, with the
// display names the seed's configuration uses. Azure adds regions over
// time; a region missing here is a one-line addition.
var azureRegions = map[string]string{
	"australiacentral": "Australia Central", "australiacentral2": "Australia Central 2",
	"australiaeast": "Australia East", "australiasoutheast": "Australia Southeast",
	"austriaeast": "Austria East", "belgiumcentral": "Belgium Central",
	"brazilsouth": "Brazil South", "brazilsoutheast": "Brazil Southeast",
	"canadacentral": "Canada Central", "canadaeast": "Canada East",
	"centralindia": "Central India", "centralus": "Central US", "centraluseuap": "Central US EUAP",
	"chilecentral": "Chile Central", "denmarkeast": "Denmark East",
	"eastasia": "East Asia", "eastus": "East US", "eastus2": "East US 2", "eastus2euap": "East US 2 EUAP",
	"francecentral": "France Central", "francesouth": "France South",
	"germanynorth": "Germany North", "germanywestcentral": "Germany West Central",
	"indonesiacentral": "Indonesia Central", "israelcentral": "Israel Central",
	"italynorth": "Italy North", "japaneast": "Japan East", "japanwest": "Japan West",
	"jioindiacentral": "Jio India Central", "jioindiawest": "Jio India West",
	"koreacentral": "Korea Central", "koreasouth": "Korea South",
	"malaysiawest": "Malaysia West", "mexicocentral": "Mexico Central",
	"newzealandnorth": "New Zealand North", "northcentralus": "North Central US",
	"northeurope": "North Europe", "norwayeast": "Norway East", "norwaywest": "Norway West",
	"polandcentral": "Poland Central", "qatarcentral": "Qatar Central",
	"southafricanorth": "South Africa North", "southafricawest": "South Africa West",
	"southcentralus": "South Central US", "southeastasia": "Southeast Asia",
	"southindia": "South India", "spaincentral": "Spain Central",
	"swedencentral": "Sweden Central", "swedensouth": "Sweden South",
	"switzerlandnorth": "Switzerland North", "switzerlandwest": "Switzerland West",
	"uaecentral": "UAE Central", "uaenorth": "UAE North",
	"uksouth": "UK South", "ukwest": "UK West",
	"westcentralus": "West Central US", "westeurope": "West Europe", "westindia": "West India",
	"westus": "West US", "westus2": "West US 2", "westus3": "West US 3",
}

// NormalizeRegion removes all white space and lower-cases, so that
// "North Central US" and "northcentralus" compare equal.
func NormalizeRegion(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// KnownAzureRegion reports whether a region, in any spelling, is an Azure
// region.
func KnownAzureRegion(s string) bool {
	_, ok := azureRegions[NormalizeRegion(s)]
	return ok
}

func azureRegionNames() []string {
	out := make([]string, 0, len(azureRegions))
	for k := range azureRegions {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
