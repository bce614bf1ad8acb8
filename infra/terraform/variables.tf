# Inputs of the walrus-cluster module: every one typed, described and validated.

variable "project_id" {
  type        = string
  description = "Google Cloud project that holds the cluster."
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a Google Cloud project id (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  type        = string
  description = "Region of the private network, the nodes and the gateway load balancer, e.g. europe-west1."
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like europe-west1."
  }
}

variable "zones" {
  type        = list(string)
  description = "Zones the nodes are spread over, round-robin (node i in zones[i % length]). Empty: every zone of the region that is up."
  default     = []
  validation {
    condition     = alltrue([for z in var.zones : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "zones must be zone names such as europe-west1-b."
  }
}

variable "name" {
  type        = string
  description = "Prefix of every resource name (VMs are <name>-node-<id>)."
  default     = "walrus"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name))
    error_message = "name must be 1-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "node_count" {
  type        = number
  description = "Number of node VMs. Node 1 bootstraps the cluster, the others join it. 3 tolerates one failure, 5 two. Lower it only after `walrus-cli remove-node` of the last nodes (README)."
  default     = 3
  validation {
    condition     = var.node_count >= 1 && var.node_count <= 15 && floor(var.node_count) == var.node_count
    error_message = "node_count must be a whole number from 1 to 15."
  }
}

variable "machine_type" {
  type        = string
  description = "Machine type of the node VMs (2 vCPUs or more: the node fsyncs and runs Raft, the gateway serves HTTP)."
  default     = "e2-standard-2"
  validation {
    condition     = can(regex("^[a-z0-9]+-[a-z0-9-]+$", var.machine_type))
    error_message = "machine_type must be a machine type name such as e2-standard-2."
  }
}

variable "boot_image" {
  type        = string
  description = "Boot disk image: a Linux whose image runs cloud-init (Google's Ubuntu images do; its Debian images do not) with systemd, curl and util-linux."
  default     = "ubuntu-os-cloud/ubuntu-2404-lts-amd64"
  validation {
    condition     = length(var.boot_image) > 0
    error_message = "boot_image must not be empty."
  }
}

variable "data_disk_size_gb" {
  type        = number
  description = "Size of each node's data volume (mounted at /var/lib/walrus), in GB."
  default     = 100
  validation {
    condition     = var.data_disk_size_gb >= 10 && var.data_disk_size_gb <= 65536
    error_message = "data_disk_size_gb must be from 10 to 65536."
  }
}

variable "data_disk_type" {
  type        = string
  description = "Disk type of the data volumes. The WAL fsyncs every group commit: SSD-backed types are advised."
  default     = "pd-ssd"
  validation {
    condition     = contains(["pd-ssd", "pd-balanced", "pd-standard", "pd-extreme"], var.data_disk_type)
    error_message = "data_disk_type must be pd-ssd, pd-balanced, pd-standard or pd-extreme."
  }
}

variable "data_snapshot_retention_days" {
  type        = number
  description = "Daily snapshots of every data volume are kept this many days (0: no snapshot schedule)."
  default     = 7
  validation {
    condition     = var.data_snapshot_retention_days >= 0 && var.data_snapshot_retention_days <= 365
    error_message = "data_snapshot_retention_days must be from 0 to 365."
  }
}

variable "subnet_cidr" {
  type        = string
  description = "CIDR of the private subnet. Node i gets the fixed address cidrhost(subnet_cidr, 10 + i)."
  default     = "10.20.0.0/24"
  validation {
    condition     = can(cidrhost(var.subnet_cidr, 32))
    error_message = "subnet_cidr must be an IPv4 CIDR with room for at least 32 addresses."
  }
}

variable "raft_port" {
  type        = number
  description = "Raft and peer port of every node (--raft-port); open only between members."
  default     = 6001
  validation {
    condition     = var.raft_port >= 1024 && var.raft_port <= 65535
    error_message = "raft_port must be from 1024 to 65535."
  }
}

variable "client_port" {
  type        = number
  description = "Client port of every node (--client-port: binary and Walrus text protocols); open only between members, whose gateways use it."
  default     = 9091
  validation {
    condition     = var.client_port >= 1024 && var.client_port <= 65535
    error_message = "client_port must be from 1024 to 65535."
  }
}

variable "gateway_port" {
  type        = number
  description = "HTTP port of the gateway that runs on every node VM; open to gateway_allowed_cidrs."
  default     = 3000
  validation {
    condition     = var.gateway_port >= 1024 && var.gateway_port <= 65535
    error_message = "gateway_port must be from 1024 to 65535."
  }
}

variable "admin_port" {
  type        = number
  description = "Admin HTTP port of every node (--admin-port: Prometheus /metrics, /health, /ready); open to admin_allowed_cidrs."
  default     = 9100
  validation {
    condition     = var.admin_port >= 1024 && var.admin_port <= 65535
    error_message = "admin_port must be from 1024 to 65535."
  }
}

variable "gateway_allowed_cidrs" {
  type        = list(string)
  description = "Source ranges allowed to the gateway port (your applications, VPN or peered networks)."
  default     = []
  validation {
    condition     = alltrue([for c in var.gateway_allowed_cidrs : can(cidrnetmask(c))])
    error_message = "gateway_allowed_cidrs must be IPv4 CIDRs."
  }
}

variable "admin_allowed_cidrs" {
  type        = list(string)
  description = "Source ranges allowed to the nodes' admin port (your Prometheus)."
  default     = []
  validation {
    condition     = alltrue([for c in var.admin_allowed_cidrs : can(cidrnetmask(c))])
    error_message = "admin_allowed_cidrs must be IPv4 CIDRs."
  }
}

variable "ssh_allowed_cidrs" {
  type        = list(string)
  description = "Source ranges allowed to SSH (port 22). The default is Google's IAP TCP forwarding range: `gcloud compute ssh --tunnel-through-iap`."
  default     = ["35.235.240.0/20"]
  validation {
    condition     = alltrue([for c in var.ssh_allowed_cidrs : can(cidrnetmask(c))])
    error_message = "ssh_allowed_cidrs must be IPv4 CIDRs."
  }
}

variable "gateway_load_balancer" {
  type        = string
  description = "How the gateways are reached: `internal` (a regional internal TCP load balancer in the subnet), `external` (a regional external one) or `none` (gateway_url is node 1's gateway)."
  default     = "internal"
  validation {
    condition     = contains(["internal", "external", "none"], var.gateway_load_balancer)
    error_message = "gateway_load_balancer must be internal, external or none."
  }
}

variable "enable_nat" {
  type        = bool
  description = "Create a Cloud NAT so the nodes (which have no public address) can download Node.js and the release at first boot."
  default     = true
  validation {
    condition     = var.enable_nat == true || var.enable_nat == false
    error_message = "enable_nat must be true or false."
  }
}

variable "node_version" {
  type        = string
  description = "Node.js version installed on the VMs (20.x: the version the project is tested on)."
  default     = "20.20.2"
  validation {
    condition     = can(regex("^20\\.[0-9]+\\.[0-9]+$", var.node_version))
    error_message = "node_version must be a Node.js 20 version such as 20.20.2."
  }
}

variable "node_dist_url" {
  type        = string
  description = "Where the Node.js tarballs and SHASUMS256.txt are (the official site, or your mirror with the same layout)."
  default     = "https://nodejs.org/dist"
  validation {
    condition     = can(regex("^https?://[^\\s]+[^/]$", var.node_dist_url))
    error_message = "node_dist_url must be an http(s) URL without a trailing slash."
  }
}

variable "release_url" {
  type        = string
  description = "URL of the release tarball (`npm pack` output, walrus-ts-<version>.tgz) the VMs download at first boot, e.g. a Cloud Storage object readable by the nodes' service account or an HTTPS URL."
  validation {
    condition     = can(regex("^https?://[^\\s]+\\.tgz$", var.release_url))
    error_message = "release_url must be an http(s) URL of a .tgz file."
  }
}

variable "release_sha256" {
  type        = string
  description = "SHA-256 of the release tarball (`sha256sum walrus-ts-*.tgz`); a download that does not match is refused."
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.release_sha256))
    error_message = "release_sha256 must be 64 lowercase hex digits."
  }
}

variable "fsync" {
  type        = string
  description = "WAL fsync policy of the nodes (WALRUS_FSYNC): always, never or interval:<ms>."
  default     = "always"
  validation {
    condition     = can(regex("^(always|never|interval:[0-9]{1,5})$", var.fsync))
    error_message = "fsync must be always, never or interval:<ms>."
  }
}

variable "node_env" {
  type        = map(string)
  description = "Other WALRUS_* environment variables for every node (see `walrus-node --help`), e.g. { WALRUS_MAX_SEGMENT_ENTRIES = \"100000\" }."
  default     = {}
  validation {
    condition = alltrue([
      for k, v in var.node_env : can(regex("^WALRUS_[A-Z0-9_]+$", k)) && can(regex("^[^\\n\"'\\\\]*$", v))
    ])
    error_message = "node_env keys must be WALRUS_* names; values must hold no newline, quote or backslash."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every VM and disk."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))])
    error_message = "labels must be Google Cloud labels (lowercase keys and values)."
  }
}
