# A three-node Walrus-TS cluster in one region of Google Cloud, gateways behind an internal load
# balancer. `terraform.tfvars.example` lists what to fill in; ../../README.md walks through it.

terraform {
  required_version = ">= 1.5.0"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.0.0, < 7.0.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

variable "project_id" {
  type        = string
  description = "Google Cloud project to deploy into."
  validation {
    condition     = length(var.project_id) > 0
    error_message = "project_id must not be empty."
  }
}

variable "region" {
  type        = string
  description = "Region of the cluster; the three nodes go to three of its zones."
  default     = "europe-west1"
  validation {
    condition     = length(var.region) > 0
    error_message = "region must not be empty."
  }
}

variable "release_url" {
  type        = string
  description = "URL of the walrus-ts-<version>.tgz release tarball (npm pack output)."
  validation {
    condition     = endswith(var.release_url, ".tgz")
    error_message = "release_url must name a .tgz file."
  }
}

variable "release_sha256" {
  type        = string
  description = "sha256sum of the release tarball."
  validation {
    condition     = length(var.release_sha256) == 64
    error_message = "release_sha256 must be 64 hex digits."
  }
}

variable "client_cidrs" {
  type        = list(string)
  description = "Ranges of the applications (and Prometheus) that use the gateway."
  default     = ["10.0.0.0/8"]
  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrnetmask(c))])
    error_message = "client_cidrs must be IPv4 CIDRs."
  }
}

variable "prometheus_cidrs" {
  type        = list(string)
  description = "Ranges of the Prometheus servers that scrape the nodes' admin ports."
  default     = ["10.0.0.0/8"]
  validation {
    condition     = alltrue([for c in var.prometheus_cidrs : can(cidrnetmask(c))])
    error_message = "prometheus_cidrs must be IPv4 CIDRs."
  }
}

module "walrus" {
  source = "../.."

  project_id            = var.project_id
  region                = var.region
  name                  = "walrus"
  node_count            = 3
  release_url           = var.release_url
  release_sha256        = var.release_sha256
  gateway_allowed_cidrs = var.client_cidrs
  admin_allowed_cidrs   = var.prometheus_cidrs
  gateway_load_balancer = "internal"
}

output "gateway_url" {
  description = "Base URL of the gateways' load balancer."
  value       = module.walrus.gateway_url
}

output "node_names" {
  description = "Names of the node VMs (gcloud compute ssh NAME --tunnel-through-iap)."
  value       = module.walrus.node_names
}

output "node_client_addresses" {
  description = "Client addresses of the nodes, for walrus-cli on a node."
  value       = module.walrus.node_client_addresses
}

output "cluster_secret_id" {
  description = "The secret to add the cluster secret to."
  value       = module.walrus.cluster_secret_id
}

output "gateway_tokens_secret_id" {
  description = "The secret to add the gateway tokens to."
  value       = module.walrus.gateway_tokens_secret_id
}

output "prometheus_scrape_config" {
  description = "scrape_configs for Prometheus."
  value       = module.walrus.prometheus_scrape_config
}

output "node_service_account" {
  description = "The nodes' service account (give it read access to a private release bucket)."
  value       = module.walrus.node_service_account
}
