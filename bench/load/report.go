package load

// Event is one JSON line rtspload writes on stdout. Event says which kind:
// "ready" (every reader receiving), "measure_start", "closed" (a session
// ended; Reader, User, Error), "report" (Report set) or "error" (Error).
type Event struct {
	Event  string  `json:"event"`
	TimeNs int64   `json:"t_unix_ns"`
	Reader *int    `json:"reader,omitempty"`
	User   string  `json:"user,omitempty"`
	Error  string  `json:"error,omitempty"`
	RampMs float64 `json:"ramp_ms,omitempty"` // ready: first connect to every reader receiving
	Addr   string  `json:"addr,omitempty"`    // floor_ready: where the floor server listens
	Report *Report `json:"report,omitempty"`
}

// Report covers one measurement window of every reader of an rtspload run.
type Report struct {
	Readers       int     `json:"readers"`
	ConnectErrors int     `json:"connect_errors"`
	WindowS       float64 `json:"window_s"`
	Received      int     `json:"received"` // readers that got at least one packet in the window
	Ended         int     `json:"ended"`    // readers whose session had ended by the end of the window
	ReaderStats
	SeqResetReaders int `json:"seq_reset_readers"`
	// PacketsPerReaderS is the mean packet rate per reader in the window.
	PacketsPerReaderS float64 `json:"packets_per_reader_s"`
	LostPerReader     float64 `json:"lost_per_reader"`
	MaxLostOneReader  uint64  `json:"max_lost_one_reader"`
	// Latency is camsim send time (SEI) to the complete access unit at the
	// reader (marker packet), over every reader and frame in the window.
	Latency HistSummary `json:"latency"`
	// CPUCores is this load client's own CPU use over the window.
	CPUCores     float64               `json:"cpu_cores"`
	ReadSyscalls int64                 `json:"read_syscalls"` // this process's, in the window
	RSSKB        int64                 `json:"rss_kb"`
	ByUser       map[string]*UserStats `json:"by_user,omitempty"`
}

// UserStats are a Report's figures for the readers of one user.
type UserStats struct {
	Readers int `json:"readers"`
	Ended   int `json:"ended"`
	ReaderStats
}
