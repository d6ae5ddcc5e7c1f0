"""Engine servers on other machines (OpenAI-compatible servers the owner added), and answers streamed from them."""
